"""Sending the invoice to the customer: through SMTP when ``SMTP_URL`` is set, otherwise a log line.

``SMTP_URL`` spells the server as ``smtp://[user:pass@]host[:port]`` (plain, or
``?starttls=true`` to upgrade), or ``smtps://...`` for implicit TLS (port 465).
Without it, "sending" logs the recipient, the subject and the attachment size,
which is what a developer needs to see that the job ran.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from shop.settings import JobSettings

__all__ = ["Attachment", "send_mail"]

logger = logging.getLogger("shop.mail")

SMTP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


async def send_mail(
    settings: JobSettings, *, to: str, subject: str, body: str, attachment: Attachment
) -> None:
    """Deliver one message; raises when the SMTP server refuses it (the job then retries)."""
    if not settings.smtp_url:
        logger.info(
            "mail not sent (no SMTP_URL): to=%s subject=%r attachment=%s (%d bytes)",
            to,
            subject,
            attachment.filename,
            len(attachment.content),
        )
        return
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    message.add_attachment(
        attachment.content,
        maintype=attachment.maintype,
        subtype=attachment.subtype,
        filename=attachment.filename,
    )
    url = urlsplit(settings.smtp_url)
    implicit_tls = url.scheme == "smtps"
    starttls = parse_qs(url.query).get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
    await aiosmtplib.send(
        message,
        hostname=url.hostname or "localhost",
        port=url.port or (465 if implicit_tls else 25),
        username=unquote(url.username) if url.username else None,
        password=unquote(url.password) if url.password else None,
        use_tls=implicit_tls,
        start_tls=starttls,
        timeout=SMTP_TIMEOUT,
    )
    logger.info(
        "mail sent: to=%s subject=%r (%d bytes attached)", to, subject, len(attachment.content)
    )
