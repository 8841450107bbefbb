"""aimeta.files.find_images: each image file once, in path order, whatever the inputs."""

from __future__ import annotations

from pathlib import Path

from aimeta.files import find_images


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_each_file_once_in_path_order_with_its_root(tmp_path: Path) -> None:
    root = tmp_path / "Input"
    b = _touch(root / "b.png")
    a = _touch(root / "sub" / "a.JPG")
    _touch(root / "notes.txt")
    (root / "folder.png").mkdir()  # a folder with an image's name is no image
    # The folder twice and one of its files again: nothing is listed twice, and a file
    # keeps the root it was first found under.
    found = find_images([root, root, a])
    assert [item.path for item in found] == [b, a]
    assert {item.root for item in found} == {root}
    assert [item.key for item in found] == ["Input/b.png", "Input/sub/a.JPG"]


def test_not_recursive_and_a_single_file(tmp_path: Path) -> None:
    top = _touch(tmp_path / "top.webp")
    _touch(tmp_path / "deeper" / "x.png")
    assert [item.path for item in find_images([tmp_path], recursive=False)] == [top]
    (single,) = find_images([top])
    assert (single.root, single.key) == (tmp_path, f"{tmp_path.name}/top.webp")


def test_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.png").symlink_to(tmp_path / "missing.png")
    reported: list[tuple[str, str]] = []
    assert find_images([tmp_path], on_error=lambda p, r: reported.append((p, r))) == []
    assert reported == [(str(tmp_path / "gone.png"), "broken symbolic link")]
