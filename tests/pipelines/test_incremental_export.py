"""records.jsonl / records.csv kept current by merging what changed: after any sequence of
runs they are byte for byte what a whole export of the database writes."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aimeta import db
from aimeta.cli import app
from aimeta.pipelines import all as all_pipeline
from aimeta.pipelines import export, export_state
from aimeta.settings import Settings
from factory import png_with_text

INFOTEXT = (
    "a lighthouse at dusk, (masterpiece:1.2), <lora:add_detail:0.8>\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 512x512, Model: base"
)


def picture(path: Path, seed: int, prompt: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return png_with_text(path, {"parameters": prompt + INFOTEXT.format(seed=seed)})


def settings_for(out: Path) -> Settings:
    return Settings(out_dir=out, db=out / "images.db", jobs=1)


def run_all(folder: Path, out: Path) -> all_pipeline.AllResult:
    return all_pipeline.run([folder], settings_for(out))


def whole_export(out: Path, where: Path) -> tuple[bytes, bytes]:
    conn = db.open_readonly(out / "images.db")
    try:
        export.write_both(conn, where / "whole.jsonl", where / "whole.csv")
    finally:
        conn.close()
    return (where / "whole.jsonl").read_bytes(), (where / "whole.csv").read_bytes()


def exported(out: Path) -> tuple[bytes, bytes]:
    return (out / "records.jsonl").read_bytes(), (out / "records.csv").read_bytes()


def assert_current(out: Path, tmp_path: Path) -> None:
    assert exported(out) == whole_export(out, tmp_path)


def test_adds_changes_moves_and_removals_are_merged_into_the_files(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    for number in range(6):
        picture(folder / f"b{number}.png", number)
    # Paths that sort around the others and need quoting or escaping; a multi-line prompt.
    picture(folder / 'a, "quoted".png', 10, "line one\r\nline two, ")
    picture(folder / "été" / "猫.png", 11)
    first = run_all(folder, out)
    assert first.export_how == "written"
    assert_current(out, tmp_path)
    stamps = [os.stat(path).st_mtime_ns for path in (out / "records.jsonl", out / "records.csv")]

    unchanged = run_all(folder, out)
    assert (unchanged.export_how, unchanged.exported) == ("unchanged", False)
    assert stamps == [os.stat(p).st_mtime_ns for p in (out / "records.jsonl", out / "records.csv")]

    picture(folder / "a0.png", 20)  # sorts first
    picture(folder / "c" / "z.png", 21)  # sorts last
    picture(folder / "b3.png", 33, "changed, ")  # read again
    added = run_all(folder, out)
    assert (added.ingest.stored, added.export_how) == (3, "merged")
    assert_current(out, tmp_path)

    # Renamed: re-linked by content (its key changes); a folder moved below another name
    # with the same last name keeps the keys (re-linked by key).
    (folder / "b1.png").rename(folder / "renamed.png")
    moved = run_all(folder, out)
    assert (moved.relinked.images, moved.export_how) == (1, "merged")
    assert_current(out, tmp_path)
    (tmp_path / "elsewhere").mkdir()
    folder.rename(tmp_path / "elsewhere" / "Input")
    folder = tmp_path / "elsewhere" / "Input"
    by_key = run_all(folder, out)
    assert (by_key.relinked.images, by_key.export_how) == (10, "merged")
    assert_current(out, tmp_path)

    # Deleted: marked missing (its record stays), then pruned (its record goes).
    (folder / "b4.png").unlink()
    missing = run_all(folder, out)
    assert (missing.missing.marked, missing.export_how) == (1, "unchanged")
    assert_current(out, tmp_path)
    pruned = CliRunner().invoke(app, ["prune", "--db", str(out / "images.db")])
    assert pruned.exit_code == 0, pruned.output
    after_prune = run_all(folder, out)
    assert after_prune.export_how == "written"  # prune does not say what it removed
    assert_current(out, tmp_path)
    assert b"b4.png" not in exported(out)[0]


def test_watch_batches_leave_their_changes_pending_for_the_next_run(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    run_all(folder, out)
    before = exported(out)
    new = picture(folder / "b.png", 2)
    changed = picture(folder / "a.png", 3, "again, ")
    settings = settings_for(out)
    from aimeta.pipelines import watch

    batch = watch.store_files([new, changed], [folder], settings, deleted=False)
    assert (batch.ingest.stored, batch.export_how) == (2, "")
    assert exported(out) == before  # not written after a batch
    state = export_state.State.loads(export_state.state_path(out / "images.db").read_bytes())
    assert state is not None and state.pending.keys == {"Input/a.png", "Input/b.png"}

    nothing_new = run_all(folder, out)
    assert nothing_new.export_how == "merged"
    assert_current(out, tmp_path)


def test_all_no_export_leaves_the_files_and_the_next_run_merges(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    runner = CliRunner()
    command = ["all", str(folder), "--out-dir", str(out), "--jobs", "1", "--json"]
    assert runner.invoke(app, command).exit_code == 0
    before = exported(out)
    picture(folder / "b.png", 2)
    skipped = runner.invoke(app, [*command, "--no-export"])
    assert skipped.exit_code == 0, skipped.output
    report = json.loads(skipped.stdout)
    assert (report["stored"], report["exports"]) == (1, "pending")
    assert report["summary"]["images"] == 2  # the summary still counts the database
    assert exported(out) == before
    merged = runner.invoke(app, command)
    assert json.loads(merged.stdout)["exports"] == "merged"
    assert_current(out, tmp_path)
    assert exported(out) != before


@pytest.mark.parametrize(
    "damage", ["edited", "copied from elsewhere", "no state", "killed", "database made again"]
)
def test_files_not_known_to_be_current_are_written_whole(tmp_path: Path, damage: str) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    picture(folder / "b.png", 2)
    run_all(folder, out)
    if damage == "edited":
        with (out / "records.csv").open("ab") as handle:
            handle.write(b"a line of my own\r\n")
    elif damage == "copied from elsewhere":
        other = tmp_path / "other"
        picture(other / "c.png", 3)
        run_all(other, tmp_path / "other-out")
        for name in ("records.jsonl", "records.csv"):
            (out / name).write_bytes((tmp_path / "other-out" / name).read_bytes())
    elif damage == "no state":
        export_state.forget(out / "images.db")
    elif damage == "database made again":
        # Deleted with one of the files: a merge would keep that file's record. The new
        # database is told apart by its creation time (seconds) and inode (which may be reused).
        time.sleep(1.0 - time.time() % 1.0)
        for name in ("images.db", "images.db-wal", "images.db-shm", "exif_raw.jsonl"):
            (out / name).unlink(missing_ok=True)
        (folder / "b.png").unlink()
    else:  # a run killed after writing the database, before bringing the files up to date
        with export_state.claimed(out / "images.db"):
            conn = db.connect(out / "images.db")
            with db.transaction(conn):
                conn.execute("UPDATE kv SET value = 'edited' WHERE key = 'seed'")
            conn.close()

    result = run_all(folder, out)

    assert result.export_how == "written"
    assert_current(out, tmp_path)


def test_other_commands_forget_the_state_or_leave_their_changes_pending(tmp_path: Path) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    run_all(folder, out)
    database = out / "images.db"
    state = export_state.state_path(database)
    # `resources` rewrites rows without listing them: the next run writes the files whole.
    result = CliRunner().invoke(app, ["resources", "--db", str(database)])
    assert result.exit_code == 0, result.output
    assert not state.exists()
    assert run_all(folder, out).export_how == "written"
    assert_current(out, tmp_path)
    # `ingest` lists the images it stored: they wait for the next run, which merges them.
    result = CliRunner().invoke(app, ["ingest", "--reparse", "--db", str(database)])
    assert result.exit_code == 0, result.output
    pending = export_state.State.loads(state.read_bytes())
    assert pending is not None and pending.pending.keys == {"Input/a.png"}
    assert run_all(folder, out).export_how == "merged"
    assert_current(out, tmp_path)


# --- merge_both on its own: ties on a path, escaped paths, every kind of change -------------


def stored(conn: sqlite3.Connection, ident: int, key: str, path: str, prompt: str) -> None:
    conn.execute(
        "INSERT INTO images (id, key, path, file_name, generator) VALUES (?, ?, ?, 'f', 'a1111')"
        " ON CONFLICT(id) DO UPDATE SET key = excluded.key, path = excluded.path",
        (ident, key, path),
    )
    conn.execute("DELETE FROM kv WHERE image_id = ?", (ident,))
    conn.execute("INSERT INTO kv VALUES (?, 'prompt', ?)", (ident, prompt))
    conn.execute("DELETE FROM resources WHERE image_id = ?", (ident,))
    conn.execute(
        "INSERT INTO resources (image_id, kind, name, weight) VALUES (?, 'lora', ?, 0.5)",
        (ident, f"l{ident}"),
    )


def test_merge_both_equals_a_whole_export(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "images.db")
    paths = ["/p/a.png", "/p/b.png", "C:\\pics\\x.png", '/p/"q".png', "/p/é.png", "/p/b.png"]
    with db.transaction(conn):
        for ident, path in enumerate(paths, start=1):
            stored(conn, ident, f"k{ident}", path, f"prompt {ident},\nmore")
    jsonl, csv = tmp_path / "records.jsonl", tmp_path / "records.csv"
    export.write_both(conn, jsonl, csv)
    changes = export.Changes()
    with db.transaction(conn):
        stored(conn, 7, "k7", "/p/b.png", "joins a shared path")  # ties with 2 and 6 (by id)
        stored(conn, 3, "k3", "C:\\pics\\y.png", "moved, same key")
        stored(conn, 5, "k5-new", "/p/é.png", "re-keyed in place")
        stored(conn, 8, "k8", "/a-first.png", 'a "new" one')
        conn.execute("DELETE FROM images WHERE id = 1")
    changes.keys.update({"k7", "k3", "k8"})
    changes.ids.add(5)
    changes.paths.add("/p/a.png")

    assert export.merge_both(conn, jsonl, csv, changes)[0] == 7
    export.write_both(conn, tmp_path / "w.jsonl", tmp_path / "w.csv")
    assert jsonl.read_bytes() == (tmp_path / "w.jsonl").read_bytes()
    assert csv.read_bytes() == (tmp_path / "w.csv").read_bytes()


def two_images_exported(tmp_path: Path) -> tuple[sqlite3.Connection, Path, Path]:
    """Images 1 and 2 at /p/1.png and /p/2.png, written whole to records.jsonl and .csv."""
    conn = db.connect(tmp_path / "images.db")
    with db.transaction(conn):
        for ident in (1, 2):
            stored(conn, ident, f"k{ident}", f"/p/{ident}.png", "x")
    jsonl, csv = tmp_path / "records.jsonl", tmp_path / "records.csv"
    export.write_both(conn, jsonl, csv)
    return conn, jsonl, csv


def test_merge_both_refuses_files_that_do_not_match(tmp_path: Path) -> None:
    conn, jsonl, csv = two_images_exported(tmp_path)
    lines = jsonl.read_bytes().splitlines(keepends=True)
    jsonl.write_bytes(lines[1] + lines[0])  # out of order
    before = (jsonl.read_bytes(), csv.read_bytes())
    with pytest.raises(export.NotMergeable):
        export.merge_both(conn, jsonl, csv, export.Changes(ids={1}))
    assert (jsonl.read_bytes(), csv.read_bytes()) == before


def test_ingest_merges_into_the_files_it_names_and_export_writes_them_whole(
    tmp_path: Path,
) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    run_all(folder, out)
    picture(folder / "b.png", 2)
    runner = CliRunner()
    dumped = runner.invoke(app, ["dump", str(folder), "--out", str(out / "exif_raw.jsonl")])
    assert dumped.exit_code == 0, dumped.output
    files = ["--jsonl", str(out / "records.jsonl"), "--csv", str(out / "records.csv")]
    ingested = runner.invoke(
        app, ["ingest", "--in", str(out / "exif_raw.jsonl"), "--db", str(out / "images.db"), *files]
    )
    assert ingested.exit_code == 0, ingested.output
    assert b"Input/b.png" in exported(out)[0]
    assert_current(out, tmp_path)
    assert run_all(folder, out).export_how == "unchanged"  # ingest left them current

    (out / "records.csv").write_bytes(b"damaged")
    rewritten = runner.invoke(app, ["export", "--out-dir", str(out)])
    assert rewritten.exit_code == 0, rewritten.output
    assert "export: 2 records" in rewritten.output
    assert_current(out, tmp_path)
    assert run_all(folder, out).export_how == "unchanged"


def test_too_many_pending_changes_drop_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    run_all(folder, out)
    monkeypatch.setattr(export_state, "PENDING_LIMIT", 1)
    from aimeta.pipelines import watch

    new = [picture(folder / f"n{number}.png", number) for number in range(2)]
    watch.store_files(new[:1], [folder], settings_for(out), deleted=False)
    assert export_state.state_path(out / "images.db").is_file()  # one key pending
    watch.store_files(new[1:], [folder], settings_for(out), deleted=False)
    assert not export_state.state_path(out / "images.db").exists()  # two: dropped
    assert run_all(folder, out).export_how == "written"
    assert_current(out, tmp_path)


# --- appending: new images whose paths sort after every line ------------------------------


def inodes(out: Path) -> list[int]:
    return [os.stat(out / name).st_ino for name in ("records.jsonl", "records.csv")]


def test_new_images_after_the_last_line_are_appended_and_others_merged(tmp_path: Path) -> None:
    """A generator's next files (later names) are appended in place: the same files, grown;
    anything else (a file that sorts earlier, a changed one) goes through the whole merge,
    which writes new files. Either way the result is byte for byte a whole export."""
    folder, out = tmp_path / "Input", tmp_path / "out"
    for number in range(3):
        picture(folder / "2026-12-01" / f"{number:05d}.png", number)
    assert run_all(folder, out).export_how == "written"
    before = inodes(out)
    size = (out / "records.jsonl").stat().st_size

    for number in range(3, 6):
        picture(folder / "2026-12-02" / f"{number:05d}.png", number)
    appended = run_all(folder, out)
    assert (appended.ingest.stored, appended.export_how) == (3, "merged")
    assert inodes(out) == before and (out / "records.jsonl").stat().st_size > size
    assert_current(out, tmp_path)

    picture(folder / "2026-11-30" / "00000.png", 99)  # sorts before the last line
    assert run_all(folder, out).export_how == "merged"
    assert inodes(out) != before
    assert_current(out, tmp_path)

    after = inodes(out)
    picture(folder / "2026-12-02" / "00005.png", 55, "changed, ")  # the last line, read again
    picture(folder / "2026-12-03" / "00000.png", 7)  # new, sorts last
    assert run_all(folder, out).export_how == "merged"
    assert inodes(out) != after  # an old image changed: merged, not appended
    assert_current(out, tmp_path)


def test_a_state_without_the_largest_id_is_merged_not_appended(tmp_path: Path) -> None:
    """A state file written before the largest id was kept: no append (it cannot tell which
    images the files hold), the whole merge as before."""
    folder, out = tmp_path / "Input", tmp_path / "out"
    picture(folder / "a.png", 1)
    run_all(folder, out)
    state = export_state.state_path(out / "images.db")
    data = json.loads(state.read_bytes())
    assert data["top_id"] == 1
    del data["top_id"]
    state.write_text(json.dumps(data))
    before = inodes(out)

    picture(folder / "b.png", 2)
    assert run_all(folder, out).export_how == "merged"
    assert inodes(out) != before
    assert_current(out, tmp_path)


def test_append_both_declines_an_image_the_files_may_hold(tmp_path: Path) -> None:
    conn, jsonl, csv = two_images_exported(tmp_path)
    with db.transaction(conn):
        stored(conn, 3, "k3", "/p/3.png", "new")
        stored(conn, 2, "k2", "/p/9.png", "moved to a later path")
    files = (jsonl.read_bytes(), csv.read_bytes())
    # Image 2 is not newer than the files (top id 2): its old line must go, so no append.
    assert export.append_both(conn, jsonl, csv, export.Changes(ids={2, 3}), top_id=2) is None
    # A moved image's old path before the last line: no append either.
    changes = export.Changes(ids={3}, paths={"/p/1.png"})
    assert export.append_both(conn, jsonl, csv, changes, top_id=2) is None
    # A key no image has any more (re-keyed or deleted) may have a line anywhere: no append.
    changes = export.Changes(ids={3}, keys={"k3", "k-gone"})
    assert export.append_both(conn, jsonl, csv, changes, top_id=2) is None
    assert (jsonl.read_bytes(), csv.read_bytes()) == files
    changes = export.Changes(ids={3}, keys={"k3"})
    assert export.append_both(conn, jsonl, csv, changes, top_id=2) == (1, 1)
    assert jsonl.read_bytes().startswith(files[0]) and csv.read_bytes().startswith(files[1])
    assert jsonl.read_bytes().splitlines()[-1].startswith(b'{"path":"/p/3.png"')
    conn.close()
