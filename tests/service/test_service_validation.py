"""Every kind of bad input gets a JSON 4xx naming the field, and the service keeps working.

Validation happens entirely in the API process, so most tests call the app in-process (FastAPI's
TestClient) on the shared stack's Redis and queue: no HTTP server adds anything there, and accepted jobs
still run on the stack's real worker. A chunked upload and a burst of bad requests go through real HTTP.
"""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_http import submit as post

from app.main import create_app
from jobs.store import JobStore, connect

LIMITS = {"max_file_bytes": 200_000, "max_request_bytes": 500_000, "max_image_pixels": 1_000_000}


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height pixels (a decompression bomb's header)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def padded(data: bytes, nbytes: int) -> bytes:
    """A valid JPEG grown to `nbytes` (decoders ignore bytes after the end-of-image marker)."""
    return data + bytes(max(0, nbytes - len(data)))


def assert_error(response: httpx.Response, status: int, field: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["message"]
    if code:
        assert error["code"] == code, error
    assert "Traceback" not in response.text and "/work" not in response.text
    return error


def in_process_client(service, **settings: object) -> TestClient:
    """The API app in this process, on the stack's Redis prefix and queue (its worker runs the jobs)."""
    config = service.settings(**settings)
    app = create_app(config, store=JobStore(connect(config), config))
    return TestClient(app, raise_server_exceptions=False)  # answer 500s as a real server would


@pytest.fixture(scope="module")
def client(service):
    with in_process_client(service) as http:
        yield http


@pytest.fixture(scope="module")
def limited(service):
    """The app with small limits, so the limit tests send little data."""
    with in_process_client(service, **LIMITS) as http:
        yield http


@pytest.fixture(scope="module")
def limited_http(service):
    """A second API process with the small limits: a chunked body must meet a real HTTP server."""
    url = service.start_api(**LIMITS)
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def jpeg(photo_bytes) -> bytes:
    return photo_bytes[0]


def test_no_images(client):
    assert_error(post(client, []), 422, "images", "no_images")  # sent form-urlencoded by httpx
    empty_file_input = [("images", ("", b"", "application/octet-stream"))]  # a browser's empty <input>
    response = client.post("/generate", data={"prompt": "a dog"}, files=empty_file_input)
    assert_error(response, 422, "images", "no_images")


def test_too_many_images(client, jpeg):
    assert_error(post(client, [jpeg] * 9), 422, "images", "too_many_images")


def test_not_an_image(client, jpeg):
    error = assert_error(post(client, [jpeg, b"hello, I am a text file"]), 415, "images", "not_an_image")
    assert error["index"] == 1


def test_empty_file(client):
    assert_error(post(client, [b""]), 422, "images", "empty_file")


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_unsupported_format(client, fmt):
    error = assert_error(post(client, [encode(Image.new("RGB", (32, 32)), fmt)]), 415, "images")
    assert error["code"] == "unsupported_format" and fmt in error["message"]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_accepted_formats(client, fmt):
    response = post(client, [encode(Image.new("RGBA" if fmt != "JPEG" else "RGB", (48, 40), "red"), fmt)])
    assert response.status_code == 202, response.text


def test_truncated_image(client, jpeg):
    assert_error(post(client, [jpeg[: len(jpeg) // 2]]), 422, "images", "corrupt_image")


def test_jpeg_with_bytes_after_its_end_marker_is_decoded_and_accepted(client, jpeg):
    """Without the end marker last the API decodes the file in full, which accepts what libjpeg reads."""
    assert post(client, [jpeg + bytes(64)]).status_code == 202


def test_corrupt_png_data(client):
    data = bytearray(encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG"))
    data[60:200] = bytes(140)  # garbage inside the compressed pixel data
    assert_error(post(client, [bytes(data)]), 422, "images", "corrupt_image")


@pytest.mark.parametrize("size", [(8000, 8000), (60000, 60000)])
def test_decompression_bomb_refused_before_decoding(client, size):
    # 64 MP is over our default 40 MP; 3.6 GP is also over Pillow's own bomb limit
    bomb = png_claiming_size(*size)
    assert len(bomb) < 100
    assert_error(post(client, [bomb]), 413, "images", "too_many_pixels")


def test_sliver_that_passes_the_pixel_count_is_refused(client, photo_bytes):
    # 65500 x 610 has fewer pixels than the limit; as a JPEG it is 624 KiB, yet padding it to a square
    # once cost a worker 17 GB. Its header alone refuses it, naming the image.
    error = assert_error(post(client, [photo_bytes[0], png_claiming_size(65500, 610)]), 413, "images")
    assert error["code"] == "image_too_large" and error["index"] == 1 and "12,000" in error["message"]
    sliver = encode(Image.new("RGB", (900, 100), "white"), "JPEG")  # ratio 9 > 8
    error = assert_error(post(client, [sliver]), 422, "images", "aspect_ratio")
    assert error["index"] == 0 and "900 x 100" in error["message"]


def test_shape_limits_are_settings(make_stack, photo_bytes):
    stack = make_stack(max_image_side=500, max_image_aspect_ratio=1.5)
    with httpx.Client(base_url=stack.start_api(), timeout=30) as http:
        assert_error(post(http, [encode(Image.new("RGB", (600, 500), "white"), "PNG")]), 413, "images")
        assert_error(post(http, [encode(Image.new("RGB", (400, 200), "white"), "PNG")]), 422, "images")


def test_pixel_limit_is_a_setting(limited):
    big = encode(Image.new("RGB", (1100, 1000), "white"), "PNG")  # 1.1 MP, a few KB
    assert_error(post(limited, [big]), 413, "images", "too_many_pixels")


def test_file_over_size_limit(limited, jpeg):
    error = assert_error(post(limited, [padded(jpeg, 250_000)]), 413, "images", "file_too_large")
    assert error["index"] == 0


def test_request_over_total_limit(limited, jpeg):
    part = padded(jpeg, 150_000)
    assert len(part) < LIMITS["max_file_bytes"]
    assert_error(post(limited, [part] * 4), 413, None, "request_too_large")
    assert post(limited, [part] * 2).status_code == 202  # under both limits


def test_limits_hold_without_content_length(limited_http, jpeg):
    """A chunked body has no Content-Length: the running total must still stop it."""
    boundary = "xyzBOUNDARY"
    part = padded(jpeg, 150_000)

    def body():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na dog\r\n'.encode()
        for i in range(6):
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{i}.jpg"\r\n'
            yield (head + "Content-Type: image/jpeg\r\n\r\n").encode() + part + b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    response = limited_http.post(
        "/generate", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, None, "request_too_large")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 5000}, "prompt"),
        ({"negative_prompt": "x" * 5000}, "negative_prompt"),
        ({"steps": "0"}, "steps"),
        ({"steps": "100000"}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"num_images": "5"}, "num_images"),
        ({"guidance_image": "-1"}, "guidance_image"),
        ({"guidance_text": "1e9"}, "guidance_text"),
        ({"height": "63"}, "height"),
        ({"width": "100000"}, "width"),
        ({"seed": "-3"}, "seed"),
        ({"pooling": "median"}, "pooling"),
        ({"segment": "magic"}, "segment"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_fields(client, jpeg, fields, field):
    error = assert_error(post(client, [jpeg], **fields), 422, field)
    assert field in error["message"]


def test_missing_prompt(client, jpeg):
    files = [("images", ("a.jpg", jpeg, "image/jpeg"))]
    assert_error(client.post("/generate", data={"steps": "2"}, files=files), 422, "prompt")


def test_not_multipart(client):
    assert_error(client.post("/generate", json={"prompt": "a dog"}), 415, None, "not_multipart")
    assert_error(client.post("/generate", content=b"--x--"), 415, None, "not_multipart")


def test_unknown_job_and_image(client):
    assert_error(client.get("/jobs/" + "0" * 32), 404, "id", "not_found")
    assert_error(client.delete("/jobs/nonsense"), 404, "id", "not_found")
    assert_error(client.get("/jobs/" + "0" * 32 + "/images/0"), 404, "id", "not_found")


def test_burst_of_bad_requests_leaves_service_healthy(service, jpeg, poll):
    bad_bodies = [[b"junk"], [], [jpeg[:100]], [png_claiming_size(9000, 9000)]]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as http:

            async def one(i: int) -> int:
                images = bad_bodies[i % len(bad_bodies)]
                files = [("images", ("x", data, "image/jpeg")) for data in images] or None
                response = await http.post("/generate", data={"prompt": "a dog", "steps": "0"}, files=files)
                return response.status_code

            return await asyncio.gather(*(one(i) for i in range(40)))

    statuses = asyncio.run(burst())
    assert all(400 <= s < 500 for s in statuses), statuses
    with httpx.Client(base_url=service.url, timeout=30) as client:
        good = post(client, [jpeg])
        assert good.status_code == 202
        assert poll(client, good.json()["id"])["status"] == "finished"
        assert client.get("/readyz").status_code == 200


def test_job_ids_are_checked_before_redis_is_asked(client, jpeg, poll):
    job_id = post(client, [jpeg]).json()["id"]
    assert poll(client, job_id)["status"] == "finished"  # so `job:<id>:image:0` exists in Redis
    for path in (f"{job_id}:image:0", job_id.upper(), f"{job_id[:-1]}*"):
        for response in (client.get(f"/jobs/{path}"), client.delete(f"/jobs/{path}")):
            assert_error(response, 404, "id", "not_found")
    assert_error(client.get(f"/jobs/{job_id}:image:0/images/0"), 404, "id", "not_found")


@pytest.mark.parametrize("key", ["", "   ", "k" * 256])
def test_empty_or_overlong_idempotency_key_is_refused(client, jpeg, key):
    files = [("images", ("a.jpg", jpeg, "image/jpeg"))]
    response = client.post(
        "/generate", data={"prompt": "a dog", "steps": "2"}, files=files, headers={"Idempotency-Key": key}
    )
    assert_error(response, 422, "Idempotency-Key", "invalid")
