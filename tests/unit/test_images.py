"""The built-in images: nginx's config and page, the busybox shell and wget, lookups."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from agents.apps import nginx
from testbed import images

REPO = Path(__file__).resolve().parents[2]
LAB_DOC = REPO.parent / "shared" / "lab" / "network-policy-lab.md"
POD = Path("/run/testbed/lab1/pods/demo.web")
CONTEXT = images.PodContext(lab="lab1", namespace="demo", pod="web", folder=POD)


def _paths(config: str) -> list[str]:
    """Every absolute path the config's directives name (quoted or not)."""
    directives = "\n".join(line for line in config.splitlines() if not line.lstrip().startswith("#"))
    return re.findall(r'(?<![\w/])(/[^";\s]+)', directives)


def test_nginx_config_keeps_every_file_in_the_pod_folder() -> None:
    config = nginx.render_config(POD, 80)
    paths = _paths(config)
    assert paths, config
    for path in paths:
        assert path.startswith(f"{POD}/") or path == "/dev/stdout", path
    for shared in ("/etc/nginx", "/var/log/nginx", "/var/lib/nginx", "/run/nginx.pid", "/usr/share/nginx"):
        assert shared not in config
    for name in nginx.TEMP_PATHS:  # each one left out would fall back to /var/lib/nginx
        assert f'{name}_temp_path "{POD}/tmp/{name}";' in config
    assert f'pid "{POD}/nginx.pid";' in config
    assert f'root "{POD}/html";' in config


def test_nginx_config_runs_in_the_foreground_on_the_port() -> None:
    config = nginx.render_config(POD, 8080)
    assert "daemon off;" in config.splitlines()
    assert "        listen 8080;" in config.splitlines()
    assert "listen 80;" in nginx.render_config(POD)


def test_two_pods_share_no_file() -> None:
    one = set(_paths(nginx.render_config(Path("/run/testbed/lab1/pods/demo.web-1"))))
    two = set(_paths(nginx.render_config(Path("/run/testbed/lab1/pods/demo.web-2"))))
    assert one & two == {"/dev/stdout"}


def test_nginx_config_rejects_a_bad_port() -> None:
    with pytest.raises(ValueError, match="port 0 is not in 1..65535"):
        nginx.render_config(POD, 0)


def test_nginx_config_quotes_paths() -> None:
    config = nginx.render_config(Path('/tmp/a "b"'))
    assert 'pid "/tmp/a \\"b\\"/nginx.pid";' in config


def test_nginx_argv_uses_the_pod_prefix_config_and_stderr() -> None:
    assert nginx.argv(POD) == (
        "/usr/sbin/nginx", "-p", f"{POD}/", "-c", f"{POD}/nginx.conf", "-e", "stderr",
    )  # fmt: skip


def test_page_is_upstreams_welcome_page() -> None:
    page = nginx.page()
    assert len(page.encode()) == 612  # upstream's index.html, byte for byte
    assert page.startswith("<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n")
    assert "<h1>Welcome to nginx!</h1>" in page
    assert page.endswith("<p><em>Thank you for using nginx.</em></p>\n</body>\n</html>\n")


@pytest.mark.skipif(not LAB_DOC.exists(), reason="the lab's text is not beside this checkout")
def test_page_is_the_labs_page() -> None:
    text = LAB_DOC.read_text()
    start = text.index("/ # wget -q nginx -O -\n") + len("/ # wget -q nginx -O -\n")
    shown = text[start : text.index("/ # ", start)]
    assert nginx.page() == shown


def test_nginx_default_program_writes_config_and_page_first() -> None:
    program = images.program_for("nginx", (), CONTEXT)
    assert program is not None
    assert program.argv == nginx.argv(POD)
    files = dict(program.files)
    assert files[POD / "nginx.conf"] == nginx.render_config(POD, 80)
    assert files[POD / "html" / "index.html"] == nginx.page()
    assert set(program.folders) == {POD / "html", POD / "logs", POD / "tmp"}
    assert program.cwd == "/"


def test_nginx_images_own_command_runs_on_the_pods_files() -> None:
    default = images.program_for("nginx", (), CONTEXT)
    assert images.program_for("nginx:1.25", ("nginx", "-g", "daemon off;"), CONTEXT) == default
    other = images.program_for("nginx", ("sleep", "10"), CONTEXT)
    assert other == images.Program(argv=("sleep", "10"))


def test_unknown_image_lists_the_known_ones() -> None:
    with pytest.raises(images.UnknownImage) as error:
        images.lookup("docker.io/library/redis:7")
    assert str(error.value) == "unknown image 'docker.io/library/redis:7' (known: agnhost, busybox, coredns, nginx, star-collect, star-probe)"
    with pytest.raises(images.UnknownImage):
        images.interactive_argv("redis", ())


@pytest.mark.parametrize(
    ("written", "name"),
    [("busybox", "busybox"), ("docker.io/library/nginx:1.25", "nginx"), ("busybox@sha256:ab", "busybox")],
)
def test_base_name(written: str, name: str) -> None:
    assert images.base_name(written) == name
    assert images.lookup(written).name == name


def test_busybox_without_command_runs_nothing() -> None:
    assert images.program_for("busybox", (), CONTEXT) is None


def test_busybox_command_gets_our_bin_first_on_path() -> None:
    program = images.program_for("busybox", ("sleep", "3600"), CONTEXT)
    assert program is not None
    assert program.argv == ("sleep", "3600")
    assert program.env is not None
    assert program.env["PATH"].split(":")[0] == str(images.BUSYBOX_BIN)
    assert program.env["HOME"] == "/root"


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ((), ("sh",)),
        (("/bin/sh",), ("sh",)),
        (("sh", "-c", "wget -q nginx -O -"), ("sh", "-c", "wget -q nginx -O -")),
        (("wget", "-q", "--timeout=5", "nginx", "-O", "-"), ("wget", "-q", "--timeout=5", "nginx", "-O", "-")),
        (("busybox", "wget", "-q", "nginx"), ("wget", "-q", "nginx")),
        (("/usr/bin/busybox", "sh"), ("sh",)),
    ],
)
def test_busybox_interactive_runs_our_sh_and_wget(command: tuple[str, ...], argv: tuple[str, ...]) -> None:
    got, env = images.interactive_argv("busybox", command)
    own = str(images.BUSYBOX_BIN / argv[0])
    assert got == ("env", "-C", "/", own, *argv[1:])
    assert env["PATH"].split(":")[0] == str(images.BUSYBOX_BIN)
    assert "TERM" not in env  # the caller's terminal keeps its own


@pytest.mark.parametrize("command", [("ls", "-l"), ("/opt/sh",), ("busybox", "ls")])
def test_busybox_other_commands_run_as_given(command: tuple[str, ...]) -> None:
    argv, _ = images.interactive_argv("busybox", command)
    assert argv == ("env", "-C", "/", *command)


def test_other_images_get_a_plain_shell() -> None:
    argv, env = images.interactive_argv("nginx", ())
    assert argv == ("env", "-C", "/", "sh")
    assert str(images.BUSYBOX_BIN) not in env["PATH"]


def test_busybox_bin_has_executable_sh_and_wget() -> None:
    for name in ("sh", "wget"):
        path = images.BUSYBOX_BIN / name
        assert path.read_text().startswith("#!/bin/sh\n")
        assert os.access(path, os.X_OK), path
    assert "PS1='\\w # '" in (images.BUSYBOX_BIN / "shrc").read_text()


def test_agnhost_still_serves_80_and_81() -> None:
    program = images.program_for("agnhost", (), CONTEXT)
    assert program is not None
    assert program.argv[1:] == ("-m", "agents.apps.serve", "--tcp", "80,81", "--udp", "80,81", "--name", "demo/web")
    assert program.env is None


def test_star_probe_runs_the_manifests_command() -> None:
    command = ("probe", "--http-port=6379", "--urls=http://frontend.stars:80/status,http://backend.stars:6379/status")
    program = images.program_for("calico/star-probe:v0.1.0", command, CONTEXT)
    assert program is not None
    assert program.argv == (sys.executable, "-m", "agents.apps.star_probe", *command[1:])
    assert images.program_for("star-probe", ("/usr/local/bin/probe",), CONTEXT) == images.Program(
        argv=(sys.executable, "-m", "agents.apps.star_probe")
    )
    assert images.program_for("calico/star-probe:multiarch", ("sleep", "1"), CONTEXT) == images.Program(argv=("sleep", "1"))


def test_star_collect_default_reads_the_labs_etcd() -> None:
    from testbed.runtime import etcd_server, state

    program = images.program_for("calico/star-collect:v0.1.0", (), CONTEXT)
    assert program is not None
    socket = str(etcd_server.socket_path(state.folder("lab1")))
    assert program.argv == (
        sys.executable, "-m", "agents.apps.star_collect", "--lab", "lab1", "--etcd-socket", socket, "--pod", "demo/web",
    )  # fmt: skip
    given = images.program_for("calico/star-collect", ("collect", "--http-port=9001"), CONTEXT)
    assert given is not None and given.argv[3:5] == ("--http-port=9001", "--lab")


def test_agnhost_serve_hostname_and_connect_run_as_the_labs_server_and_probe() -> None:
    import sys  # noqa: PLC0415

    from testbed.images import UnknownImage, agnhost_argv  # noqa: PLC0415

    python = sys.executable
    assert agnhost_argv(("/agnhost", "serve-hostname", "--tcp", "--http=false", "--port", "80")) == (
        python, "-m", "agents.apps.serve", "--tcp", "80")  # fmt: skip
    assert agnhost_argv(("serve-hostname", "--udp", "--http=false", "--port=81")) == (
        python, "-m", "agents.apps.serve", "--udp", "81")  # fmt: skip
    assert agnhost_argv(("/agnhost", "connect", "10.65.0.5:80", "--timeout=1s", "--protocol=udp")) == (
        python, "-m", "agents.apps.connect", "10.65.0.5", "80", "--protocol", "udp", "--timeout", "1")  # fmt: skip
    assert agnhost_argv(("sh", "-c", "true")) == ("sh", "-c", "true")  # not agnhost's: as given
    with pytest.raises(UnknownImage, match="--http=false"):
        agnhost_argv(("/agnhost", "serve-hostname", "--tcp"))
