"""GOT-10k and LaSOT readers on tiny generated folders, their training tracks, and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from depthtracker.data.formats.got10k import read_got10k
from depthtracker.data.formats.lasot import read_lasot
from depthtracker.data.formats.sot_sequence import sequence_tracks


def _frames(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((24, 32, 3), 40 * i, np.uint8)
        cv2.imwrite(str(folder / f"{i + 1:08d}.jpg"), img)


def _got(root: Path) -> Path:
    split = root / "train"
    a = split / "GOT-10k_Train_000001"
    _frames(a, 4)
    (a / "groundtruth.txt").write_text("1,2,10,8\n2,3,10,8\n3.5,4,10,8\n4,5,10,8\n")
    (a / "absence.label").write_text("0\n0\n1\n0\n")
    (a / "cover.label").write_text("8\n0\n8\n5\n")
    b = split / "GOT-10k_Train_000002"
    _frames(b, 3)
    (b / "groundtruth.txt").write_text("0,0,5,5\n1,1,5,5\n2,2,5,5\n")
    (split / "list.txt").write_text("GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
    t = root / "test" / "GOT-10k_Test_000001"
    _frames(t, 3)
    (t / "groundtruth.txt").write_text("5,6,7,8\n")
    return root


def test_got10k_reader(tmp_path):
    root = _got(tmp_path)
    seqs = read_got10k(root, "train")
    assert [s.name for s in seqs] == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]
    a = seqs[0]
    assert len(a) == 4 and a.boxes.dtype == np.float32
    np.testing.assert_allclose(a.boxes[2], [3.5, 4, 13.5, 12])  # x,y,w,h -> x1,y1,x2,y2
    assert a.visible.tolist() == [True, False, False, True]  # covered (cover 0), absent, visible
    assert a.image(1).shape == (24, 32, 3)
    (test,) = read_got10k(root / "test")
    assert test.visible.tolist() == [True, False, False] and np.isnan(test.boxes[1:]).all()
    tracks = sequence_tracks(seqs, min_box_px=4)
    assert [len(t.frames) for t in tracks] == [2, 3] and tracks[0].frames.tolist() == [0, 3]
    assert tracks[0].image(int(tracks[0].frames[1])).mean() == pytest.approx(120, abs=3)


def test_got10k_errors_name_file_and_line(tmp_path):
    root = _got(tmp_path)
    gt = root / "train" / "GOT-10k_Train_000002" / "groundtruth.txt"
    gt.write_text("0,0,5,5\n1,1,five,5\n2,2,5,5\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt:2: expected 4 numbers"):
        read_got10k(root, "train")
    gt.write_text("0,0,5,5\n1,1,5\n2,2,5,5\n")
    with pytest.raises(ValueError, match=r"groundtruth.txt:2: .*got 3"):
        read_got10k(root, "train")
    gt.write_text("0,0,5,5\n1,1,5,-5\n2,2,5,5\n")
    with pytest.raises(ValueError, match="negative box size"):
        read_got10k(root, "train")
    gt.write_text("0,0,5,5\n1,1,5,5\n")
    with pytest.raises(ValueError, match="2 boxes for 3 frames"):
        read_got10k(root, "train")
    (root / "train" / "list.txt").write_text("GOT-10k_Train_000009\n")
    with pytest.raises(ValueError, match="missing"):
        read_got10k(root, "train")
    with pytest.raises(ValueError, match="does not exist"):
        read_got10k(root, "val")


def _lasot(root: Path) -> Path:
    for cat, k, n in (("cat", 1, 4), ("cat", 2, 3), ("drone", 1, 3)):
        d = root / cat / f"{cat}-{k}"
        _frames(d / "img", n)
        (d / "groundtruth.txt").write_text("".join(f"{i},{i},6,7\n" for i in range(n)))
        (d / "full_occlusion.txt").write_text(",".join("1" if i == 1 else "0" for i in range(n)))
        (d / "out_of_view.txt").write_text(",".join("1" if i == n - 1 else "0" for i in range(n)))
    (root / "testing_set.txt").write_text("drone-1\n")
    return root


def test_lasot_reader(tmp_path):
    root = _lasot(tmp_path)
    seqs = read_lasot(root)
    assert [s.name for s in seqs] == ["cat-1", "cat-2", "drone-1"]
    assert seqs[0].visible.tolist() == [True, False, True, False]  # occluded at 1, out of view at 3
    np.testing.assert_allclose(seqs[0].boxes[2], [2, 2, 8, 9])
    assert [s.name for s in read_lasot(root, split_file="testing_set.txt")] == ["drone-1"]
    assert len(sequence_tracks(seqs)) == 3


def test_lasot_errors(tmp_path):
    root = _lasot(tmp_path)
    (root / "cat" / "cat-2" / "full_occlusion.txt").write_text("0,1")
    with pytest.raises(ValueError, match="full_occlusion.txt: 2 values for 3 frames"):
        read_lasot(root)
    (root / "cat" / "cat-2" / "full_occlusion.txt").write_text("0,x,0")
    with pytest.raises(ValueError, match="expected integers"):
        read_lasot(root)
    with pytest.raises(ValueError, match="not found"):
        read_lasot(root, names=["bird-3"])
