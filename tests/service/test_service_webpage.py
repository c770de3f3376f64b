"""The web page at / on the same API: upload, submit, watch progress, see the image (headless Chromium)."""

from __future__ import annotations


def test_page_uploads_submits_and_shows_the_result(service, browser, dog_photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/")
    wait = WebDriverWait(browser, 60)
    steps = browser.find_element(By.ID, "steps")
    wait.until(lambda d: steps.get_attribute("max"))  # ranges were read from /openapi.json
    assert int(steps.get_attribute("min")) >= 1
    browser.find_element(By.ID, "images").send_keys(str(dog_photos[0]))
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#previews img")))
    browser.find_element(By.ID, "prompt").send_keys("a dog in the snow")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    steps.send_keys("3")
    browser.find_element(By.ID, "submit").click()
    image = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#results img.result"))
    )
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", image) == 64
    assert browser.find_element(By.ID, "status").text.startswith("finished: step 3 of 3")
    assert browser.find_element(By.ID, "error").text == ""


def test_page_shows_field_errors(service, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a photo")
    browser.get(service.url + "/")
    browser.find_element(By.ID, "images").send_keys(str(not_an_image))
    browser.find_element(By.ID, "prompt").send_keys("a dog")
    browser.find_element(By.ID, "submit").click()
    error = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert error.startswith("images[0]:") and "not an image" in error


def test_page_prepares_a_subject_and_follows_the_job_live(service, browser, dog_photos):
    """Prepare a subject, check its cut-out, generate from it; progress arrives over the events stream."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(service.url + "/")
    wait = WebDriverWait(browser, 60)
    steps = browser.find_element(By.ID, "steps")
    wait.until(lambda d: steps.get_attribute("max"))
    browser.find_element(By.ID, "images").send_keys(str(dog_photos[-1]))
    browser.find_element(By.ID, "subject-name").send_keys("page dog")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    Select(browser.find_element(By.NAME, "segment")).select_by_value("none")
    browser.find_element(By.ID, "save-subject").click()
    reference = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#subject-refs img.reference"))
    )
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", reference) > 0)
    assert browser.execute_script("return arguments[0].naturalWidth", reference) == 64  # the prepared size
    assert browser.find_element(By.ID, "subject-status").text == "ready"
    chosen = Select(browser.find_element(By.ID, "subject")).first_selected_option.text
    assert chosen.startswith("page dog (ready, 1 refs)")

    browser.find_element(By.ID, "images").clear()  # the subject replaces the photos
    browser.find_element(By.ID, "prompt").send_keys("a dog on the moon")
    steps.send_keys("15")
    browser.find_element(By.ID, "submit").click()
    image = wait.until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#results img.result"))
    )
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    status = browser.find_element(By.ID, "status")
    assert status.text.startswith("finished: step 15 of 15")
    assert status.get_attribute("data-source") == "events"
    assert int(status.get_attribute("data-events")) >= 4  # status changes and steps, pushed live
    assert browser.find_element(By.ID, "error").text == ""

    browser.find_element(By.ID, "delete-subject").click()
    wait.until(
        lambda d: Select(d.find_element(By.ID, "subject")).first_selected_option.get_attribute("value") == ""
    )


def test_page_names_the_field_once(service, browser, dog_photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/")
    wait = WebDriverWait(browser, 30)
    steps = browser.find_element(By.ID, "steps")
    wait.until(lambda d: steps.get_attribute("max"))
    browser.execute_script("arguments[0].removeAttribute('max')", steps)  # as an old page would send it
    browser.find_element(By.ID, "prompt").send_keys("a dog")
    browser.find_element(By.CSS_SELECTOR, "details summary").click()
    steps.send_keys("100000")
    browser.find_element(By.ID, "images").send_keys(str(dog_photos[0]))
    browser.find_element(By.ID, "submit").click()
    error = wait.until(lambda d: d.find_element(By.ID, "error").text)
    assert error.startswith("steps: ") and not error.startswith("steps: steps:"), error


def test_api_docs_render_under_the_csp(service, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(service.url + "/docs")
    title = WebDriverWait(browser, 60).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert "BootPIG" in title.text
    blocked = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not blocked, blocked
