import base64
import json
import re
import shutil

import pytest

from pcdarts.cli import main
from pcdarts.nas.genotype import GENOTYPES
from tests.pictures import assert_drawn


def test_plot_builtin_genotype_png_without_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # as on a machine with no dot binary
    out = tmp_path / "cell.png"
    assert main(["plot", "--genotype", "PC_DARTS_cifar", "--out", str(out)]) == 0
    assert "matplotlib renderer" in capsys.readouterr().out
    assert_drawn(out, min_side=400)


@pytest.mark.parametrize("suffix", [".svg", ".pdf"])
def test_plot_vector_formats(tmp_path, suffix):
    out = tmp_path / f"cell{suffix}"
    assert main(["plot", "--genotype", "NASNet", "--out", str(out), "--renderer", "matplotlib"]) == 0
    data = out.read_bytes()
    if suffix == ".svg":  # an SVG document with the cells drawn: nodes, edges and their labels as paths
        import xml.etree.ElementTree as ET

        root = ET.fromstring(data)
        assert root.tag.endswith("svg")
        assert sum(1 for e in root.iter() if e.tag.endswith("path")) > 50
    else:  # a whole PDF of one page (both cells on it)
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert len(re.findall(rb"/Type ?/Page[^s]", data)) == 1


def test_plot_search_run(digits_runs, tmp_path):
    out = tmp_path / "figs"
    assert main(["plot", "--run", str(digits_runs / "search"), "--out", str(out)]) == 0
    for name in ("cells.png", "alpha_beta.png", "timeline.png", "curves.png"):
        assert_drawn(out / name, min_side=300)


def test_heatmap_epochs_count_from_one_as_the_console_does(digits_runs, tmp_path, capsys):
    import json

    n = len((digits_runs / "search" / "arch_history.jsonl").read_text().splitlines())
    out = tmp_path / "figs"
    assert main(["plot", "--run", str(digits_runs / "search"), "--out", str(out), "--epochs", "1", str(n)]) == 0
    assert main(["plot", "--run", str(digits_runs / "search"), "--out", str(out), "--epochs", "0"]) == 2
    assert f"no epoch 0 in this search: it has epochs 1..{n}" in capsys.readouterr().err
    assert json.loads((digits_runs / "search" / "arch_history.jsonl").read_text().splitlines()[0])["epoch"] == 1


def test_report_embeds_images(digits_runs):
    assert main(["report", str(digits_runs)]) == 0
    page = (digits_runs / "report.html").read_text()
    summary = page.split("<h2>")[0]  # the summary table comes before every section
    assert "<th>test accuracy</th>" in summary and "training (train)" in summary and "search (search)" in summary
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 5
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Derived genotype" in page and "test_accuracy" in page


def test_report_on_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no search" in capsys.readouterr().err


def test_an_edge_has_one_name_in_text_and_pictures():
    from pcdarts.nas.genotype import GENOTYPES, edge_name
    from pcdarts.viz.plot import _edge_labels

    assert _edge_labels(2) == [edge_name(0, 0), edge_name(1, 0), edge_name(0, 1), edge_name(1, 1), edge_name(2, 1)]
    assert _edge_labels(2)[4] == "node 0 -> node 1" and edge_name(1, 0) == "c_{k-1} -> node 0"
    text = GENOTYPES["PC_DARTS_cifar"].describe()
    assert "(c_{k-1})" in text and "(node 0)" in text  # the state names the edge names are built from


def test_the_timeline_calls_a_genotype_stable_only_if_it_held_past_the_last_epoch(tmp_path):
    from pcdarts.nas.candidates import SPACES
    from pcdarts.nas.genotype import random_genotype
    from pcdarts.viz.plot import genotype_timeline

    a, b = random_genotype(0).to_dict(), random_genotype(1).to_dict()
    hist = lambda genos: [{"epoch": e, "genotype": g} for e, g in enumerate(genos, 1)]  # noqa: E731
    assert genotype_timeline(hist([a, b, b]), tmp_path / "t.png")[1] == 2
    assert genotype_timeline(hist([a, a, b]), tmp_path / "t.png")[1] is None  # it changed at the last epoch
    nb = random_genotype(2, ops=SPACES["nb201"]).to_dict()  # the legend lists the searched space's derivable ops
    out, _ = genotype_timeline([{"epoch": 1, "genotype": nb, "ops": list(SPACES["nb201"])}], tmp_path / "n.svg")
    texts = set(re.findall(r"<!-- (.*?) -->", out.read_text()))  # matplotlib names each text it draws as paths
    assert set(SPACES["nb201"]) - {"none"} <= texts and not {"sep_conv_3x3", "dil_conv_5x5"} & texts


def test_a_picture_is_written_whole_or_not_at_all(tmp_path):
    """A drawing that fails leaves the picture that was there; one that works replaces it in one step."""
    from matplotlib.figure import Figure

    from pcdarts.files import atomic_save_figure

    out = tmp_path / "pic.png"
    out.write_bytes(b"the old picture")

    class Broken(Figure):
        def savefig(self, fname, **kwargs):
            fname.write(b"\x89PNG half")
            raise RuntimeError("drawing failed")

    with pytest.raises(RuntimeError, match="drawing failed"):
        atomic_save_figure(Broken(), out, dpi=50)
    assert out.read_bytes() == b"the old picture" and [p.name for p in tmp_path.iterdir()] == ["pic.png"]
    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [0, 1])
    assert atomic_save_figure(fig, out, dpi=50) == out
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_report_of_a_damaged_run_shows_what_it_can_and_names_the_rest(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    g = GENOTYPES["DARTS_V2"].to_dict()
    (run / "result.json").write_text(json.dumps({"test_accuracy": "high", "genotype": g, "params": "many"}))
    (run / "metrics.jsonl").write_text('{"epoch": "x", "train_loss": 1.0}\n{"epoch": 0, "train_loss": 0.5}\n')
    (run / "config.json").write_text("{not json")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "malformed epoch" in page and "high" in page
    (run / "result.json").write_text(json.dumps({"genotype": {"normal": "x"}}))
    assert main(["report", str(run)]) == 0
    assert "not a valid cell" in (run / "report.html").read_text()
    (run / "result.json").write_bytes(b"\xff")
    assert main(["report", str(run)]) == 0
    assert "result.json is not UTF-8" in caplog.text and "could not be used" in (run / "report.html").read_text()
