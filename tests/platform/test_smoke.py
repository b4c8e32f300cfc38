from tests.support.factories import auth_headers, make_user


async def test_health_live(client):
    r = await client.get("/health/live")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_user_fixture(client, db, settings):
    user = await make_user(db, is_staff=True)
    assert user.id > 0
    r = await client.get("/api/schema/", headers=auth_headers(settings, user))
    assert r.status_code in (200, 401)
