"""Contract tests for the parts of the module only Slicer runs (no Slicer here): the Widget's .ui, its parameter
node, the Segment Editor effect, the icon and the files the extension and the package ship. Each checks that two
things written separately agree, so that they cannot drift apart unnoticed."""
from __future__ import annotations

import ast
import py_compile
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "plugin" / "VoxPrompt"
sys.path.insert(0, str(MODULE))

UI = MODULE / "Resources" / "UI" / "VoxPrompt.ui"
SOURCE = MODULE / "VoxPrompt.py"
EFFECT = MODULE / "SegmentEditorVoxPromptLib" / "SegmentEditorEffect.py"


def ui_widgets() -> dict:
    """name -> the <widget> element, for every widget in the .ui."""
    root = ET.parse(UI).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def ui_property(widget, name):
    for p in widget.findall("property"):
        if p.get("name") == name:
            value = p[0]
            if value.tag == "stringlist":
                return [s.text for s in value.findall("string")]
            return value.text
    return None


def module_tree() -> ast.Module:
    return ast.parse(SOURCE.read_text())


def ui_lookups(tree: ast.AST) -> set:
    """Every NAME in `self.ui.NAME` and in `ui.NAME` (where a method took `ui = self.ui`)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            v = node.value
            if (isinstance(v, ast.Attribute) and v.attr == "ui" and isinstance(v.value, ast.Name)
                    and v.value.id == "self") or (isinstance(v, ast.Name) and v.id == "ui"):
                names.add(node.attr)
    return names


def parameter_fields(tree: ast.Module) -> dict:
    """The parameter node wrapper's fields: name -> the annotation's source text."""
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)
              and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in n.decorator_list)]
    return {s.target.id: ast.unparse(s.annotation) for s in cls.body if isinstance(s, ast.AnnAssign)}


def test_the_module_and_the_effect_compile():
    for f in (SOURCE, EFFECT, MODULE / "SegmentEditorVoxPromptLib" / "__init__.py"):
        py_compile.compile(str(f), doraise=True)


def test_every_widget_the_widget_code_looks_up_is_in_the_ui():
    widgets = ui_widgets()
    used = ui_lookups(module_tree())
    assert len(used) >= 15, sorted(used)  # the lookups were found at all
    missing = sorted(used - set(widgets))
    assert not missing, f"VoxPrompt.py uses self.ui.{missing} which {UI.name} does not define"
    # The kinds the code relies on: node selectors, a text field, the buttons, progress, settings.
    kinds = {n: w.get("class") for n, w in widgets.items()}
    for name in ("inputVolumeSelector", "roiSelector", "positivePointsSelector", "negativePointsSelector",
                 "segmentationSelector"):
        assert kinds[name] == "qMRMLNodeComboBox", (name, kinds[name])
    assert kinds["textLineEdit"] == "QLineEdit" and kinds["progressBar"] == "QProgressBar"
    assert kinds["confidenceCheckBox"] == "QCheckBox" and kinds["settingsCollapsibleButton"] == "ctkCollapsibleButton"
    for name in ("applyButton", "refineButton", "cancelButton", "undoButton", "redoButton"):
        assert kinds[name] == "QPushButton", name
    for name in ("libraryPathLineEdit", "modelPathLineEdit", "openvinoPathLineEdit"):
        assert kinds[name] == "ctkPathLineEdit", name
    # The module loads this file by this path.
    assert 'loadUI(self.resourcePath("UI/VoxPrompt.ui"))' in SOURCE.read_text()


def test_the_ui_binds_exactly_the_parameter_node_fields_with_matching_types_and_choices():
    fields = parameter_fields(module_tree())
    bound = {ui_property(w, "SlicerParameterName"): w for w in ui_widgets().values()
             if ui_property(w, "SlicerParameterName")}
    assert set(bound) == set(fields), (sorted(bound), sorted(fields))
    for name, widget in bound.items():
        annotation = fields[name]
        kind = widget.get("class")
        if annotation.startswith("vtkMRML"):
            assert kind == "qMRMLNodeComboBox" and ui_property(widget, "nodeTypes") == [annotation], (name, kind)
        elif annotation == "bool":
            assert kind == "QCheckBox", (name, kind)
        elif annotation == "str":
            assert kind == "QLineEdit", (name, kind)
        else:
            choices = ast.literal_eval(re.search(r"Choice\((\[.*\])\)", annotation).group(1))
            items = [i.find("property/string").text for i in widget.findall("item")]
            assert kind == "QComboBox" and items == choices, (name, items, choices)


def test_every_node_selector_gets_the_scene():
    root = ET.parse(UI).getroot()
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget"
    fed = {(c.findtext("sender"), c.findtext("signal"), c.findtext("receiver"), c.findtext("slot"))
           for c in root.iter("connection")}
    for name, w in ui_widgets().items():
        if w.get("class") == "qMRMLNodeComboBox":
            assert (top.get("name"), "mrmlSceneChanged(vtkMRMLScene*)", name, "setMRMLScene(vtkMRMLScene*)") in fed, name


def test_the_settings_choices_are_names_the_library_takes():
    from VoxPromptLib.binding import PRECISIONS, PROVIDERS

    w = ui_widgets()
    providers = [i.find("property/string").text for i in w["providersComboBox"].findall("item")]
    assert providers[0] == "cpu" and "openvino,cpu" in providers
    for entry in providers:
        assert set(entry.split(",")) <= set(PROVIDERS), entry
    assert [i.find("property/string").text for i in w["precisionComboBox"].findall("item")] == list(PRECISIONS)
    # Every Settings field has a widget and a QSettings key (settingsFromGUI / SETTINGS_KEYS).
    from VoxPromptLib.workflow import Settings

    src = SOURCE.read_text()
    keys = ast.literal_eval(re.search(r"SETTINGS_KEYS = (\{.*?\})", src, re.S).group(1))
    assert set(keys) == set(Settings.__dataclass_fields__)
    body = ast.get_source_segment(src, next(n for n in ast.walk(module_tree())
                                            if isinstance(n, ast.FunctionDef) and n.name == "settingsFromGUI"))
    for f in Settings.__dataclass_fields__:
        assert f"{f}=" in body, f


def test_the_effect_snapshots_for_undo_before_it_writes():
    tree = ast.parse(EFFECT.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert [ast.unparse(b) for b in cls.bases] == ["AbstractScriptedSegmentEditorEffect"]
    methods = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
    assert {"clone", "icon", "helpText", "setupOptionsFrame", "createCursor"} <= methods

    def calls(fn):
        return [(n.lineno, n.func.attr) for n in ast.walk(fn)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]

    writers = {"modifySelectedSegmentByLabelmap", "updateSegmentBinaryLabelmapFromArray"}
    writing = [f for f in ast.walk(cls) if isinstance(f, ast.FunctionDef) and writers & {a for _, a in calls(f)}]
    assert writing, "the effect writes no segment"
    for f in writing:
        snapshot = [ln for ln, a in calls(f) if a == "saveStateForUndo"]
        writes = [ln for ln, a in calls(f) if a in writers]
        assert snapshot and min(snapshot) < min(writes), f"{f.name}: saveStateForUndo must come before writing"
    # The module registers this very file.
    src = SOURCE.read_text()
    assert '"SegmentEditorVoxPromptLib",' in src and '"SegmentEditorEffect.py"' in src and "register()" in src


def test_the_icon_is_the_drawn_128_pixel_png(tmp_path):
    from VoxPromptLib.render import module_icon

    png = (MODULE / "Resources" / "Icons" / "VoxPrompt.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (128, 128)
    module_icon(tmp_path / "icon.png")
    assert (tmp_path / "icon.png").read_bytes() == png, "Resources/Icons/VoxPrompt.png is not module_icon()'s"


def test_the_extension_and_the_package_ship_every_module_file():
    shipped = sorted(str(p.relative_to(MODULE)) for p in MODULE.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.name != "CMakeLists.txt")
    cmake = (MODULE / "CMakeLists.txt").read_text()
    listed = set(re.findall(r"^\s+(\S+\.\w+)$", cmake.replace("${MODULE_NAME}", "VoxPrompt"), re.M))
    assert set(shipped) == listed, (sorted(set(shipped) - listed), sorted(listed - set(shipped)))
    # scripts/slicer-package copies the module's top-level entries; each of them must be named there.
    script = (REPO / "scripts" / "slicer-package").read_text()
    for top in sorted({Path(s).parts[0] for s in shipped}):
        assert f"plugin/VoxPrompt/{top}" in script, f"scripts/slicer-package does not copy {top}"
