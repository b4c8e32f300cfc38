"""Page handlers of the console, one module per page group (templates/<group>/)."""
