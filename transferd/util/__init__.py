"""Small helpers every layer may use: durable files, secret files, TOML, units, the runtime."""
