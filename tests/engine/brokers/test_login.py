"""The login helpers: the redirect listener, `.env` writing, and the token provider a live session
re-reads on reconnect."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from engine.brokers.login import LoginError, RedirectListener, TokenProvider, write_env_variable


def test_the_listener_captures_the_code_and_ignores_other_requests() -> None:
    with RedirectListener("request_token", login_page="https://kite.example/connect/login?api_key=k") as listener:
        forwarded = httpx.get(listener.start_url, follow_redirects=False)
        assert (forwarded.status_code, forwarded.headers["location"]) == (
            302, "https://kite.example/connect/login?api_key=k")
        assert httpx.get(listener.url + "favicon.ico").status_code == 404
        assert httpx.get(listener.url, params={"request_token": "one-time-abc", "status": "success"}).status_code == 200
        assert listener.wait(5) == "one-time-abc"
        assert httpx.get(listener.url, params={"request_token": "a-second-one"}).status_code == 404


def test_an_error_redirect_or_a_wrong_state_fails_the_wait() -> None:
    with RedirectListener("code", expected={"state": "s1"}) as listener:
        httpx.get(listener.url, params={"code": "c", "state": "s2"})
        with pytest.raises(LoginError, match="state did not match"):
            listener.wait(5)
    with RedirectListener("request_token") as listener:
        httpx.get(listener.url, params={"status": "error", "message": "user cancelled"})
        with pytest.raises(LoginError, match="reported an error: user cancelled"):
            listener.wait(5)


def test_no_redirect_times_out_naming_the_redirect_url() -> None:
    with RedirectListener("code") as listener, pytest.raises(LoginError, match=listener.url):
        listener.wait(0.2)


def test_write_env_variable_replaces_one_line_and_keeps_the_rest(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# broker\nexport KITE_ACCESS_TOKEN=old\nA=1\nKITE_ACCESS_TOKEN=older\n")
    write_env_variable(env, "KITE_ACCESS_TOKEN", "new-token")
    assert env.read_text() == "# broker\nKITE_ACCESS_TOKEN=new-token\nA=1\n"
    write_env_variable(tmp_path / "fresh.env", "UPSTOX_ACCESS_TOKEN", "t")
    assert (tmp_path / "fresh.env").read_text() == "UPSTOX_ACCESS_TOKEN=t\n"


def test_the_token_provider_re_reads_its_sources_on_every_call(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("UPSTOX_ACCESS_TOKEN=from-dotenv-1\n")
    from_env_file = TokenProvider("UPSTOX_ACCESS_TOKEN", dotenv_path=env_file, environ={})
    assert from_env_file() == "from-dotenv-1"
    env_file.write_text("UPSTOX_ACCESS_TOKEN=from-dotenv-2\n")  # `autotrader login --env-file` ran meanwhile
    assert from_env_file() == "from-dotenv-2"
    environ = {"UPSTOX_ACCESS_TOKEN": "from-environment"}
    assert TokenProvider("UPSTOX_ACCESS_TOKEN", dotenv_path=env_file, environ=environ)() == "from-environment"

    block = {"value": "block-token-1"}
    from_block = TokenProvider("UPSTOX_ACCESS_TOKEN", loader=lambda: block["value"], dotenv_path=env_file,
                               environ=environ)
    assert from_block() == "block-token-1"
    block["value"] = "block-token-2"  # renewed in the Secret block while the session runs
    assert from_block() == "block-token-2"
    block["value"] = ""
    assert from_block() == "from-environment"
    assert TokenProvider("KITE_ACCESS_TOKEN", dotenv_path=tmp_path / "none", environ={})() == ""
