"""The toy-world model served with no model configured, through plain `serve` + `worker` processes:
/readyz names it, GET /examples offers its example subjects and nothing else, and the page uses them.

The bundled folder is a copy of a reduced toy export plus files that must never be served from it.
"""

from __future__ import annotations

import http.client
import json
import shutil
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
from conftest import Stack

from model.served import TOY_WORLD_NAME

SECRET = b"never served"


@pytest.fixture(scope="module")
def toy_service(make_stack, toy_model_export, tmp_path_factory) -> tuple[Stack, Path]:
    folder = tmp_path_factory.mktemp("bundled") / "model"
    shutil.copytree(toy_model_export, folder)
    subject = folder / "examples" / "subject00-ball"
    (folder / "secret.png").write_bytes(SECRET)
    (subject / "notes.txt").write_bytes(SECRET)
    (subject / "link.png").symlink_to(folder / "secret.png")
    stack = make_stack(model="", bundled_model_dir=folder)
    worker = stack.start_worker(wait=False)
    stack.start_api()
    stack.wait_for_worker(worker)
    return stack, folder


def test_readyz_names_the_toy_model_without_its_path(toy_service):
    stack, folder = toy_service
    response = httpx.get(stack.url + "/readyz", timeout=10)
    ready = response.json()
    assert response.status_code == 200 and ready["demo"] is False and "warning" not in ready
    assert ready["serving"] == [{"name": TOY_WORLD_NAME, "kind": "toy-world", "native_size": 64}]
    assert str(folder) not in response.text and "/" not in json.dumps(ready["serving"])


def test_examples_list_the_served_models_subjects_with_a_prompt(toy_service, toy_model_export):
    stack, folder = toy_service
    url = stack.url
    with httpx.Client(base_url=url, timeout=10) as client:
        examples = client.get("/examples").raise_for_status().json()["examples"]
        subjects = sorted(p.name for p in (toy_model_export / "examples").iterdir())
        assert [e["subject"] for e in examples] == subjects
        assert examples[0]["prompt"] == "a photo of a ball, on a grassy meadow"  # the toy world's grammar
        assert examples[1]["prompt"] == "a photo of a cube, on the deep snow"
        for example in examples:
            files = sorted(p.name for p in (folder / "examples" / example["subject"]).glob("0*.png"))
            assert example["images"] == [f"/examples/{example['subject']}/{name}" for name in files]
            for image_url, name in zip(example["images"], files, strict=True):
                response = client.get(image_url).raise_for_status()
                assert response.headers["content-type"] == "image/png"
                assert response.content == (folder / "examples" / example["subject"] / name).read_bytes()


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """A request line sent exactly as written: no client normalizes its dots or escapes."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_examples_serve_no_file_outside_the_listing(toy_service):
    stack, folder = toy_service
    url = stack.url
    attempts = [
        "/examples/subject00-ball/notes.txt",
        "/examples/subject00-ball/link.png",
        "/examples/../secret.png",
        "/examples/subject00-ball/../../secret.png",
        "/examples/..%2Fsecret.png",
        "/examples/subject00-ball/..%2F..%2Fsecret.png",
        "/examples/%2e%2e/secret.png",
        "/examples/subject00-ball/%2e%2e%2f%2e%2e%2fsecret.png",
        "/examples/subject00-ball/..%5C..%5Csecret.png",
        "/examples/subject00-ball/00.png%00.txt",
        "/examples/subject00-ball/" + quote(str(folder / "secret.png"), safe=""),
        "/examples/" + quote(str(folder), safe="") + "/secret.png",
        "/examples/secret.png",
        "/examples/no-such-subject/00.png",
    ]
    for path in attempts:
        status, body = raw_get(url, path)
        assert 400 <= status < 500, (path, status)
        assert SECRET not in body and b"Traceback" not in body, path
        assert str(folder).encode() not in body, path


def test_page_has_the_model_line_and_the_examples_box(toy_service):
    """What the page fills in from /readyz (`serving`) and /examples; the browser test clicks them."""
    url = toy_service[0].url
    page = httpx.get(url + "/").raise_for_status().text
    for hook in ('id="model"', 'id="examples-box"', 'fetch("/examples")', "ready.serving"):
        assert hook in page, hook


def test_page_names_the_model_and_an_example_click_makes_a_job(toy_service, browser):
    """Click an example: its images become the reference photos and its prompt the prompt; the job then runs
    at the model's 64 px, and nothing on the page breaks the CSP."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(toy_service[0].url + "/")
    wait = WebDriverWait(browser, 60)
    model = wait.until(lambda d: d.find_element(By.ID, "model").text)
    assert model == f"Model: {TOY_WORLD_NAME} (64 × 64 px images)"
    assert not browser.find_element(By.ID, "demo").is_displayed()
    example = wait.until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#examples button.example"))
    )
    assert example.get_attribute("data-subject") == "subject00-ball"
    example.click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#previews img")) == 2)
    assert browser.execute_script("return document.getElementById('images').files.length") == 2
    assert (
        browser.find_element(By.ID, "prompt").get_attribute("value")
        == "a photo of a ball, on a grassy meadow"
    )
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    browser.find_element(By.ID, "steps").send_keys("2")
    browser.find_element(By.ID, "submit").click()
    image = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#results img.result"))
    )
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 64
    assert browser.find_element(By.ID, "error").text == ""
    blocked = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked, blocked
