"""Loading images safely (bad inputs, every mode, EXIF, pixel cap) and rendering views from the original."""

from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from cropper.geometry import FULL, Box
from cropper.images import ImageError, fit_size, global_view, load_image, render

# --- helpers -----------------------------------------------------------------------------------------


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_image(w: int = 128, h: int = 96, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 1-bit PNG whose IHDR is patched to declare `width` x `height` (CRC fixed)."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail loudly if any pixel data is decoded."""

    def refuse(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# --- bad inputs --------------------------------------------------------------------------------------


def test_corrupt_bytes_with_png_name(tmp_path):
    rng = np.random.default_rng(42)
    path = write(tmp_path, "corrupt.png", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(path)
    assert "corrupt.png" in str(info.value)


def test_png_signature_then_garbage(tmp_path):
    path = write(tmp_path, "garbage.png", b"\x89PNG\r\n\x1a\n" + b"\x00\xff" * 200)
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert "garbage.png" in str(info.value)


@pytest.mark.parametrize("fmt, suffix", [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_file_first_half(tmp_path, fmt, suffix):
    data = encode(noise_image(256, 256), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    path = write(tmp_path, f"half.{suffix}", data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt") as info:
        load_image(path)
    assert "half." + suffix in str(info.value)


@pytest.mark.parametrize("fmt, cut", [("PNG", 20), ("JPEG", 40)])
def test_truncated_inside_header(tmp_path, fmt, cut):
    data = encode(noise_image(64, 64), fmt)
    path = write(tmp_path, f"stub.{fmt.lower()}", data[:cut])
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert "stub." in str(info.value)


def test_empty_file(tmp_path):
    path = write(tmp_path, "empty.png", b"")
    with pytest.raises(ImageError, match="empty") as info:
        load_image(path)
    assert "empty.png" in str(info.value)


def test_empty_bytes_named():
    with pytest.raises(ImageError, match="empty") as info:
        load_image(b"", name="upload #3")
    assert "upload #3" in str(info.value)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("This is not an image.\n" * 20)
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(path)
    assert "notes.txt" in str(info.value)


def test_directory(tmp_path):
    folder = tmp_path / "photos.png"
    folder.mkdir()
    with pytest.raises(ImageError, match="directory") as info:
        load_image(folder)
    assert "photos.png" in str(info.value)


def test_missing_path(tmp_path):
    path = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(ImageError, match="not found") as info:
        load_image(str(path))
    assert "missing.jpg" in str(info.value)


def test_error_names_the_item_given_by_name(tmp_path):
    path = write(tmp_path, "x.png", b"definitely not a png")
    with pytest.raises(ImageError) as info:
        load_image(path, name="question 17 / image 2")
    assert "question 17 / image 2" in str(info.value)
    with pytest.raises(ImageError) as info:
        load_image(b"\x00" * 64, name="item-abc")
    assert str(info.value).startswith("item-abc")


@pytest.mark.parametrize("url", ["http://example.com/cat.png", "https://example.com/a/b.jpg"])
def test_remote_urls_are_refused(url):
    with pytest.raises(ImageError, match="remote image URLs are not fetched") as info:
        load_image(url)
    message = str(info.value)
    assert url in message
    assert "path or bytes" in message


def test_huge_declared_image_refused_quickly_without_decoding(tmp_path, no_decoding):
    data = png_declaring(50_000, 50_000)
    assert len(data) < 100
    path = write(tmp_path, "bomb.png", data)
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert time.perf_counter() - start < 0.5
    message = str(info.value)
    assert "bomb.png" in message
    assert "pixel cap" in message
    assert "2500000000" in message.replace(",", "")  # 50000 * 50000


def test_over_cap_image_message_states_size_and_cap(tmp_path, no_decoding):
    path = write(tmp_path, "big.png", png_declaring(2000, 2000))
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(path, max_pixels=1_000_000)
    assert time.perf_counter() - start < 0.5
    message = str(info.value)
    assert "big.png" in message
    assert "2000x2000" in message
    assert "4,000,000" in message
    assert "cap of 1,000,000" in message
    assert "max_pixels=" in message


def test_default_cap_applies_to_declared_size(no_decoding):
    # 12000 x 12000 = 144 MP, over the 100 MP default, under Pillow's own hard limit.
    with pytest.raises(ImageError, match="cap of 100,000,000") as info:
        load_image(png_declaring(12_000, 12_000), name="scan")
    assert "12000x12000" in str(info.value)


def test_raised_max_pixels_is_honoured(monkeypatch):
    # Shrink Pillow's global limit so the conflict shows on a small image (64x64 = 4096 > 2 * 1000).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    img = load_image(encode(noise_image(64, 64), "PNG"), max_pixels=1_000_000)
    assert img.size == (64, 64)


def test_cap_applies_to_arrays_and_pil_images():
    with pytest.raises(ImageError, match="over the cap of 1,000") as info:
        load_image(np.zeros((40, 26), np.uint8), name="arr", max_pixels=1_000)
    assert "26x40" in str(info.value)
    with pytest.raises(ImageError, match="over the cap"):
        load_image(Image.new("RGB", (50, 21)), max_pixels=1_000)
    assert load_image(Image.new("RGB", (50, 20)), max_pixels=1_000).size == (50, 20)


def test_under_cap_loads():
    img = load_image(encode(noise_image(40, 25), "PNG"), max_pixels=1_000)
    assert img.size == (40, 25)


# --- modes -------------------------------------------------------------------------------------------


def test_rgb_png_roundtrip_is_exact(tmp_path):
    src = noise_image(33, 17)
    img = load_image(write(tmp_path, "rgb.png", encode(src, "PNG")))
    assert img.mode == "RGB" and img.size == (33, 17)
    assert np.array_equal(np.asarray(img), np.asarray(src))


def test_cmyk_jpeg(tmp_path):
    cmyk = Image.new("CMYK", (64, 32), (0, 0, 0, 0))  # left: no ink = white
    cmyk.paste((0, 0, 0, 255), (32, 0, 64, 32))  # right: full black
    cmyk.paste((255, 0, 0, 0), (0, 0, 16, 16))  # top-left: cyan
    path = write(tmp_path, "cmyk.jpg", encode(cmyk, "JPEG", quality=95))
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (64, 32)
    a = arr(img)
    assert (a[20:30, 18:28] >= 240).all()  # white
    assert (a[4:28, 40:60] <= 15).all()  # black
    r, g, b = a[8, 8]
    assert r <= 30 and g >= 225 and b >= 225  # cyan


def test_rgba_png_alpha_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (4, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((1, 0), (255, 0, 0, 255))  # opaque red
    rgba.putpixel((2, 0), (0, 0, 255, 128))  # half-transparent blue
    rgba.putpixel((3, 0), (10, 20, 30, 255))
    img = load_image(write(tmp_path, "alpha.png", encode(rgba, "PNG")))
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (255, 0, 0)
    r, g, b = img.getpixel((2, 0))
    # 128/255 of blue over white: 255 * (1 - 128/255) = 127 for R and G, 255 for B.
    assert abs(r - 127) <= 1 and abs(g - 127) <= 1 and b == 255
    assert img.getpixel((3, 0)) == (10, 20, 30)


def test_16bit_greyscale_png_keeps_gradient(tmp_path):
    ramp = np.linspace(1000, 60000, 256).astype(np.uint16)
    src = Image.fromarray(np.tile(ramp, (8, 1)))
    assert src.mode == "I;16"
    path = write(tmp_path, "depth16.png", encode(src, "PNG"))
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really stored and read as 16-bit
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (256, 8)
    a = np.asarray(img)
    assert a.dtype == np.uint8
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()  # grey
    row = a[0, :, 0].astype(int)
    assert (np.diff(row) >= 0).all()  # order preserved
    assert len(np.unique(row)) > 200  # not clipped / posterized
    # Scaled by the 16-bit range (v / 257), not clipped to white by PIL's own conversion.
    assert abs(row[0] - 1000 / 257) <= 1 and abs(row[-1] - 60000 / 257) <= 1
    assert (a[:, :, 0] == row).all()  # every row identical


def test_uniform_white_16bit_png_stays_white(tmp_path):
    src = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    img = load_image(write(tmp_path, "white16.png", encode(src, "PNG")))
    assert img.getpixel((3, 3)) == (255, 255, 255)


def test_palette_png(tmp_path):
    pal = Image.new("P", (3, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2])
    img = load_image(write(tmp_path, "pal.png", encode(pal, "PNG")))
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0)) for x in range(3)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_palette_png_with_transparent_index(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 10, 10] + [0] * (256 * 3 - 6))
    pal.putdata([0, 1])
    path = write(tmp_path, "paltrns.png", encode(pal, "PNG", transparency=0))
    img = load_image(path)
    assert img.getpixel((0, 0)) == (255, 255, 255)  # transparent black -> white
    assert img.getpixel((1, 0)) == (200, 10, 10)


def test_la_png(tmp_path):
    la = Image.new("LA", (3, 1))
    la.putpixel((0, 0), (0, 0))  # transparent black
    la.putpixel((1, 0), (0, 255))  # opaque black
    la.putpixel((2, 0), (100, 255))
    img = load_image(write(tmp_path, "la.png", encode(la, "PNG")))
    assert img.mode == "RGB"
    assert [img.getpixel((x, 0)) for x in range(3)] == [(255, 255, 255), (0, 0, 0), (100, 100, 100)]


def test_1bit_png(tmp_path):
    bw = Image.new("1", (4, 2), 0)
    bw.putpixel((1, 0), 1)
    bw.putpixel((3, 1), 1)
    img = load_image(write(tmp_path, "bw.png", encode(bw, "PNG")))
    assert img.mode == "RGB" and img.size == (4, 2)
    expected = np.zeros((2, 4, 3), np.uint8)
    expected[0, 1] = 255
    expected[1, 3] = 255
    assert np.array_equal(np.asarray(img), expected)


def test_greyscale_l_png(tmp_path):
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    img = load_image(write(tmp_path, "grey.png", encode(grey, "PNG")))
    a = np.asarray(img)
    assert img.mode == "RGB"
    assert np.array_equal(a[..., 0], np.arange(256).reshape(16, 16))
    assert np.array_equal(a[..., 0], a[..., 2])


# --- EXIF orientation --------------------------------------------------------------------------------


def exif_jpeg(orientation: int) -> bytes:
    """A 60x40 white JPEG with a red 12x12 marker at the STORED top-left, tagged with `orientation`."""
    img = Image.new("RGB", (60, 40), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def is_red(pixel) -> bool:
    r, g, b = pixel
    return r > 200 and g < 60 and b < 60


def is_white(pixel) -> bool:
    return min(pixel) > 200


@pytest.mark.parametrize(
    "orientation, size, marker, elsewhere",
    [
        # 6: display = stored rotated 90 deg clockwise; stored top-left -> displayed top-right.
        (6, (40, 60), (34, 5), [(5, 5), (5, 54), (34, 54)]),
        # 8: display = stored rotated 90 deg counter-clockwise; stored top-left -> displayed bottom-left.
        (8, (40, 60), (5, 54), [(5, 5), (34, 5), (34, 54)]),
        # 3: rotated 180 deg; stored top-left -> displayed bottom-right.
        (3, (60, 40), (54, 34), [(5, 5), (54, 5), (5, 34)]),
        # 1: as stored.
        (1, (60, 40), (5, 5), [(54, 5), (5, 34), (54, 34)]),
    ],
)
def test_exif_orientation_applied(tmp_path, orientation, size, marker, elsewhere):
    path = write(tmp_path, f"exif{orientation}.jpg", exif_jpeg(orientation))
    with Image.open(path) as raw:
        assert raw.size == (60, 40)  # stored unrotated
    img = load_image(path)
    assert img.mode == "RGB"
    assert img.size == size
    assert is_red(img.getpixel(marker))
    for xy in elsewhere:
        assert is_white(img.getpixel(xy)), xy


def test_exif_orientation_applied_to_bytes_input():
    img = load_image(exif_jpeg(6))
    assert img.size == (40, 60)
    assert is_red(img.getpixel((34, 5)))


# --- other sources -----------------------------------------------------------------------------------


def test_data_url_decodes():
    src = noise_image(21, 13)
    url = "data:image/png;base64," + base64.b64encode(encode(src, "PNG")).decode()
    img = load_image(url)
    assert img.size == (21, 13)
    assert np.array_equal(np.asarray(img), np.asarray(src))


def test_data_url_errors():
    with pytest.raises(ImageError, match="base64"):
        load_image("data:image/png,rawpixels")
    with pytest.raises(ImageError, match="not valid base64"):
        load_image("data:image/png;base64,abc", name="du")
    with pytest.raises(ImageError, match="not an image"):
        load_image("data:image/png;base64," + base64.b64encode(b"hello world").decode(), name="du")


def test_bytes_and_bytearray():
    data = encode(noise_image(10, 7), "PNG")
    assert load_image(data).size == (10, 7)
    assert load_image(bytearray(data)).size == (10, 7)


def test_numpy_rgb_array():
    a = np.random.default_rng(5).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    img = load_image(a)
    assert img.mode == "RGB" and img.size == (14, 9)
    assert np.array_equal(np.asarray(img), a)


def test_numpy_grey_and_rgba_arrays():
    grey = np.array([[0, 128], [255, 7]], np.uint8)
    img = load_image(grey)
    assert img.mode == "RGB" and img.size == (2, 2)
    assert np.array_equal(np.asarray(img), np.repeat(grey[..., None], 3, axis=2))

    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 1] = (0, 255, 0, 255)
    img = load_image(rgba)
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (0, 255, 0)


def test_numpy_bad_shape():
    with pytest.raises(ImageError, match="not an image") as info:
        load_image(np.zeros(10, np.uint8), name="vector")
    assert "vector" in str(info.value)
    with pytest.raises(ImageError):
        load_image(np.zeros((2, 2, 3, 1), np.uint8))


def test_numpy_single_channel_array():
    img = load_image(np.full((3, 4, 1), 77, np.uint8))
    assert img.size == (4, 3)
    assert img.getpixel((0, 0)) == (77, 77, 77)


def test_pil_image_input_is_converted():
    img = load_image(Image.new("L", (5, 3), 90))
    assert img.mode == "RGB" and img.getpixel((4, 2)) == (90, 90, 90)


# --- views -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def original():
    return noise_image(200, 100, seed=7)


def test_render_box_is_a_crop_of_the_original(original):
    box = Box(0.25, 0.1, 0.75, 0.6)
    view = render(original, box)
    assert view.box == box
    assert view.size == (100, 50)
    assert view.pixels == 5000
    assert np.array_equal(np.asarray(view.image), np.asarray(original.crop((50, 10, 150, 60))))


def test_render_unaligned_box_covers_it(original):
    view = render(original, Box(0.101, 0.333, 0.499, 0.777))
    # x: floor(20.2)=20 .. ceil(99.8)=100; y: floor(33.3)=33 .. ceil(77.7)=78
    assert view.size == (80, 45)
    assert np.array_equal(np.asarray(view.image), np.asarray(original.crop((20, 33, 100, 78))))


def test_render_tiny_box_is_at_least_one_pixel(original):
    view = render(original, Box(0.5, 0.5, 0.5, 0.5))
    assert view.size == (1, 1)
    assert view.image.getpixel((0, 0)) == original.getpixel((100, 50))


def test_render_full_keeps_pixels(original):
    view = render(original)
    assert view.box == FULL
    assert view.size == (200, 100)
    assert np.array_equal(np.asarray(view.image), np.asarray(original))


def test_render_max_side_downsizes(original):
    view = render(original, Box(0.25, 0.1, 0.75, 0.6), max_side=40)
    assert view.size == (40, 20)  # 100x50 crop, long side to 40
    view = render(original, FULL, max_side=50)
    assert view.size == (50, 25)


def test_render_never_upsizes(original):
    box = Box(0.25, 0.1, 0.75, 0.6)
    for limit in (100, 101, 1000, 10_000):
        view = render(original, box, max_side=limit)
        assert view.size == (100, 50)
        assert np.array_equal(np.asarray(view.image), np.asarray(original.crop((50, 10, 150, 60))))
    view = render(original, box, max_pixels=10**7)
    assert view.size == (100, 50)


def test_render_max_pixels(original):
    view = render(original, Box(0.25, 0.1, 0.75, 0.6), max_pixels=1250)  # 100x50 -> scale 0.5
    assert view.size == (50, 25)
    view = render(original, FULL, max_side=150, max_pixels=1250)  # the tighter limit wins
    assert view.size == (50, 25)


def test_render_downsized_crop_matches_region_not_whole_image():
    # Left half black, right half white: a crop of the right half stays white after downscaling.
    img = Image.new("RGB", (400, 200), (0, 0, 0))
    img.paste((255, 255, 255), (200, 0, 400, 200))
    view = render(img, Box(0.5, 0.0, 1.0, 1.0), max_side=50)
    assert view.size == (50, 50)
    assert (np.asarray(view.image) == 255).all()


def test_global_view_long_side():
    wide = Image.new("RGB", (3000, 1500), (10, 20, 30))
    view = global_view(wide)
    assert view.size == (1024, 512)
    assert view.box == FULL
    assert view.image.getpixel((500, 200)) == (10, 20, 30)
    tall = Image.new("RGB", (600, 2400))
    assert global_view(tall, max_side=800).size == (200, 800)


def test_global_view_small_image_unchanged():
    small = noise_image(300, 200, seed=3)
    view = global_view(small)
    assert view.size == (300, 200)
    assert np.array_equal(np.asarray(view.image), np.asarray(small))


def test_fit_size_hand_computed():
    assert fit_size(2000, 1000, max_side=1000) == (1000, 500)
    assert fit_size(1000, 2000, max_side=500) == (250, 500)
    assert fit_size(300, 200, max_side=1000) == (300, 200)
    assert fit_size(300, 200) == (300, 200)
    assert fit_size(400, 100, max_pixels=10_000) == (200, 50)
    assert fit_size(400, 100, max_side=100, max_pixels=10_000) == (100, 25)
    assert fit_size(10_000, 1, max_side=100) == (100, 1)  # never collapses to 0


def test_fit_size_respects_max_pixels():
    w, h = fit_size(100, 100, max_pixels=5000)
    assert w * h <= 5000
