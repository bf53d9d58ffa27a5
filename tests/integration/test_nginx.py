"""The documented nginx config in front of `sentserve serve`, both real processes."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.servers import BIN, free_port, running, stop

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_config(tmp: Path, nginx_port: int, app_port: int) -> Path:
    """deploy/nginx.conf as shipped, only with this test's ports, inside a minimal main file."""
    server = DEPLOY_CONF.read_text()
    server = server.replace("127.0.0.1:5000", f"127.0.0.1:{app_port}")
    server = server.replace("listen 8080;", f"listen 127.0.0.1:{nginx_port};")
    config = tmp / "nginx.conf"
    config.write_text(
        f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\nclient_body_temp_path {tmp};\nproxy_temp_path {tmp};\n"
        f"{server}\n}}\n"
    )
    return config


def _post(port: int, source: str, body: bytes) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/api/v1/models/bow-spanish/embed",
            body,
            {"Content-Type": "application/json", "X-Request-ID": "edge-1"},
        )
        answer = connection.getresponse()
        answer.read()
        return answer.status, dict(answer.getheaders())
    finally:
        connection.close()


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is installed by scripts/system-deps.sh")
def test_behind_nginx_limits_apply_per_real_client(demo_dir: Path, tmp_path: Path) -> None:
    app_port, nginx_port = free_port(), free_port()
    env = {
        "SENTSERVE_MODELS_DIR": str(demo_dir),
        "SENTSERVE_MODEL_NAMES": "bow-spanish",
        "SENTSERVE_TRUSTED_PROXIES": "1",
        "SENTSERVE_RATE_LIMIT": "3/minute",
        "SENTSERVE_LOG_LEVEL": "WARNING",
        "SENTSERVE_WARMUP_BATCHES": "0",
    }
    args = [str(BIN / "sentserve"), "serve", "--port", str(app_port), "--workers", "1"]
    with running(args, env, app_port):
        config = _nginx_config(tmp_path, nginx_port, app_port)
        nginx = subprocess.Popen(
            [NGINX, "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
            start_new_session=True,
        )
        try:
            time.sleep(0.5)
            body = json.dumps({"sentences": ["hola mundo"]}).encode()
            first = [_post(nginx_port, "127.0.0.2", body)[0] for _ in range(4)]
            second = [_post(nginx_port, "127.0.0.3", body)[0] for _ in range(4)]
            status, headers = _post(nginx_port, "127.0.0.4", b"x" * (3 * 1024 * 1024))
            _, echoed = _post(nginx_port, "127.0.0.4", body)
        finally:
            stop(nginx)
    assert first == [200, 200, 200, 429]  # each client address has its own limit...
    assert second == [200, 200, 200, 429]  # ...because X-Forwarded-For is trusted
    assert status == 413  # stopped by nginx's client_max_body_size
    assert echoed["X-Request-ID"] == "edge-1"
