"""Signing (Ed25519 node keys, batch signatures), field encryption, replay window, trust stores."""
