"""Where ciphertext lands: one contract (base.Store), one driver per kind of storage."""
