"""Where backups live: a folder, or any S3-compatible store (boto3, configured by its standard
variables: AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, or an AWS profile). One object per version, `<prefix>/<version>.jbk`; a version
appears only once completely written (a folder: written beside it and renamed; S3: an object
exists only once its upload completed). Tested against SeaweedFS's S3 gateway
(tests/integration/test_backup_s3.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from connectors.backup.container import BackupError

SUFFIX = ".jbk"


@dataclass
class Stored:
    version: str
    size: int


class Store(Protocol):
    where: str

    def list(self) -> list[Stored]: ...

    @contextmanager
    def writer(self, version: str) -> Iterator[IO[bytes]]: ...

    @contextmanager
    def reader(self, version: str) -> Iterator[tuple[IO[bytes], int]]: ...


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def list(self) -> list[Stored]:
        if not self.root.is_dir():
            return []
        return [
            Stored(p.name.removesuffix(SUFFIX), p.stat().st_size)
            for p in sorted(self.root.glob(f"*{SUFFIX}"))
        ]

    @contextmanager
    def writer(self, version: str) -> Iterator[IO[bytes]]:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / f"{version}{SUFFIX}"
        tmp = self.root / f".{version}{SUFFIX}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def reader(self, version: str) -> Iterator[tuple[IO[bytes], int]]:
        path = self.root / f"{version}{SUFFIX}"
        if not path.exists():
            raise BackupError(f"no backup version {version} in {self.root}")
        with open(path, "rb") as f:
            yield f, path.stat().st_size


class S3Store:
    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3  # lazy: only S3 destinations need it (and it takes 0.3 s to import)

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.where = f"s3://{bucket}/{self.prefix}"
        self.s3 = boto3.client("s3")

    def _key(self, version: str) -> str:
        return f"{self.prefix}/{version}{SUFFIX}" if self.prefix else f"{version}{SUFFIX}"

    @contextmanager
    def _bucket_named(self) -> Iterator[None]:
        """A missing bucket is the operator's typo far more often than anything else: say so by name
        rather than as S3's error code (other refusals keep S3's own words, see backup_cli._failing)."""
        from botocore.exceptions import ClientError  # lazy: with boto3, only for S3 destinations

        try:
            yield
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
                raise BackupError(f"{self.where}: there is no bucket {self.bucket} (NoSuchBucket)") from None
            raise

    def list(self) -> list[Stored]:
        out = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
        )
        with self._bucket_named():
            for page in pages:
                for obj in page.get("Contents", []):
                    rest = obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"]
                    name = rest.rsplit("/", 1)[-1]
                    if name.endswith(SUFFIX) and "/" not in rest:
                        out.append(Stored(name.removesuffix(SUFFIX), obj["Size"]))
        return sorted(out, key=lambda s: s.version)

    @contextmanager
    def writer(self, version: str) -> Iterator[IO[bytes]]:
        # Checked first: the upload comes only after the whole archive has been dumped, which a
        # missing bucket would otherwise waste. A 403 goes on to the upload: write-only credentials
        # (PutObject without ListBucket, a common guard for backups) may not ask this but may write.
        from botocore.exceptions import ClientError  # lazy: with boto3, only for S3 destinations

        try:
            with self._bucket_named():
                self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("403", "AccessDenied"):
                raise
        with tempfile.TemporaryFile() as f:
            yield f
            f.seek(0)
            self.s3.upload_fileobj(f, self.bucket, self._key(version))

    @contextmanager
    def reader(self, version: str) -> Iterator[tuple[IO[bytes], int]]:
        try:
            with self._bucket_named():
                obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(version))
        except self.s3.exceptions.NoSuchKey:
            raise BackupError(f"no backup version {version} in {self.where}") from None
        body = obj["Body"]
        try:
            yield body, int(obj["ContentLength"])
        finally:
            body.close()


def open_store(dest: str) -> FolderStore | S3Store:
    if dest.startswith("s3://"):
        bucket, _, prefix = dest.removeprefix("s3://").partition("/")
        if not bucket:
            raise BackupError(f"{dest}: an S3 destination is s3://BUCKET/PREFIX")
        return S3Store(bucket, prefix)
    if "://" in dest:
        raise BackupError(f"{dest}: a destination is a folder or s3://BUCKET/PREFIX")
    return FolderStore(Path(dest).expanduser().resolve())
