"""The archive in PostgreSQL/TimescaleDB: migrations, the bulk sink, snapshots, and reads for replay."""
