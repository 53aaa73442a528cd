"""Encrypted, versioned backups of the archive, the key material and the Kafka positions."""
