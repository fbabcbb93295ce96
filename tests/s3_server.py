"""A real S3 API on 127.0.0.1 for the tests: moto's server mode in a process of its own, reached the way a user
reaches S3, through the standard AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION), which pyarrow's FileSystem.from_uri reads, as Ray and tune_digits.storage resolve a storage
URI with it. Nothing leaves the loopback: the endpoint is always set, and the credential chain's
instance-metadata lookup and config files are switched off."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
from helpers import free_port

BUCKET = "tune-digits-test"


def aws_env(endpoint: str, **more: str) -> dict[str, str]:
    """The variables a user sets for an S3-compatible store; `more` overrides them (None: left unset)."""
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    env.update(more)
    return env


@contextmanager
def moto_server(env: dict | None = None):
    """`python -m moto.server` on a free loopback port; yields its endpoint URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto's server did not start (rc {process.poll()})")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


class S3:
    """The running server, its bucket and a client to look inside."""

    def __init__(self, endpoint: str):
        import boto3

        self.endpoint, self.bucket = endpoint, BUCKET
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
        self.client.create_bucket(Bucket=BUCKET)

    def uri(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"

    def keys(self, prefix: str) -> list[str]:
        """Every object under `prefix` in the bucket, relative to it."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix + "/")
        return sorted(o["Key"][len(prefix) + 1:] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()


@contextmanager
def s3_environment():
    """A moto server with a bucket, and this process's environment pointing at it (so Ray nodes and drivers
    started meanwhile inherit it); the environment is put back afterwards."""
    with moto_server() as endpoint:
        env = aws_env(endpoint)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield S3(endpoint)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

