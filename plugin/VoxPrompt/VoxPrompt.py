"""VoxPrompt for 3D Slicer: prompt- and text-driven 3D segmentation by libvoxprompt through ctypes.

Thin by design: UI (Resources/UI/VoxPrompt.ui, bound to a parameter node) and MRML marshalling only. What a run
does lives in VoxPromptLib.workflow (Slicer-free, tested by plugin/tests on the real library without Slicer):
this file turns nodes into arrays, boxes and points, and the workflow's segments back into a segmentation node.
Runs happen on a worker thread (ctypes releases the GIL), a QTimer polls their progress, Cancel calls
vxp_session_cancel. The Segment Editor effect (SegmentEditorVoxPromptLib) uses the same Logic.
"""
from __future__ import annotations

import logging
import os
from typing import Annotated, Optional

import numpy as np
import qt
import slicer
import vtk
from slicer import (vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode,
                    vtkMRMLSegmentationNode)
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from VoxPromptLib import PINNED_ONNXRUNTIME, RuntimeMissing, VoxPromptError, dice
from VoxPromptLib.workflow import (DEFAULT_CACHE_MB, SegmentationLogic, Settings, confidence_colors,
                                   objects_from_inputs)

# Application settings (QSettings), not scene parameters: where the library is and how it runs belong to the
# machine, not to a case.
SETTINGS_PREFIX = "VoxPrompt/"
SETTINGS_KEYS = {"library": "LibraryPath", "model_dir": "ModelDir", "providers": "Providers",
                 "precision": "Precision", "openvino_library": "OpenVINOLibrary", "threads": "Threads",
                 "cache_mb": "CacheMB"}
CONFIDENCE_COLORS = "VoxPrompt confidence"
EFFECT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SegmentEditorVoxPromptLib",
                             "SegmentEditorEffect.py")


class VoxPrompt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "VoxPrompt"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["Segmentations", "Markups"]
        self.parent.contributors = ["VoxPrompt developers"]
        self.parent.helpText = (
            "Segments objects in 3D from boxes (markups ROIs), positive / negative points and words (\"liver; "
            "spleen\"), with LiteMedSAM run by the VoxPrompt engine (ONNX Runtime or OpenVINO, no Python "
            "inference). Each object becomes a segment named after its prompt; an optional confidence map (0 to 1 "
            "per voxel) goes into a scalar volume. Refine sends only what changed. Also a Segment Editor effect.")
        self.parent.acknowledgementText = "LiteMedSAM weights: bowang-lab (Apache-2.0)."
        slicer.app.connect("startupCompleted()", registerEditorEffect)


def registerEditorEffect():
    """The VoxPrompt effect in the Segment Editor (the SegmentEditorEffects layout of Slicer's extension
    template), registered once Slicer has started."""
    import qSlicerSegmentationsEditorEffectsPythonQt as effects

    instance = effects.qSlicerSegmentEditorScriptedEffect(None)
    instance.setPythonSource(EFFECT_SOURCE.replace("\\", "/"))
    instance.self().register()


@parameterNodeWrapper
class VoxPromptParameterNode:
    """The scene's part of the module state; the .ui's widgets bind to these names (SlicerParameterName)."""

    inputVolume: vtkMRMLScalarVolumeNode
    text: str = ""
    roi: vtkMRMLMarkupsROINode
    positivePoints: vtkMRMLMarkupsFiducialNode
    negativePoints: vtkMRMLMarkupsFiducialNode
    segmentation: vtkMRMLSegmentationNode
    policy: Annotated[str, Choice(["reseed", "reference", "reseed-in-box"])] = "reseed"
    intensity: Annotated[str, Choice(["auto", "ct", "mr"])] = "auto"
    confidence: bool = False
    showConfidence: bool = False


def loadSettings() -> Settings:
    s, d = qt.QSettings(), Settings()
    get = lambda field, default: s.value(SETTINGS_PREFIX + SETTINGS_KEYS[field], default)  # noqa: E731
    return Settings(library=get("library", os.environ.get("VXP_LIB", "")) or None,
                    model_dir=get("model_dir", "") or None, providers=get("providers", d.providers),
                    precision=get("precision", d.precision), openvino_library=get("openvino_library", "") or None,
                    threads=int(get("threads", d.threads)), cache_mb=int(get("cache_mb", DEFAULT_CACHE_MB)))


def saveSettings(settings: Settings) -> None:
    s = qt.QSettings()
    for field, key in SETTINGS_KEYS.items():
        value = getattr(settings, field)
        s.setValue(SETTINGS_PREFIX + key, "" if value is None else value)


class VoxPromptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run = None
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self.onPoll)

    # ---- UI ----
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/VoxPrompt.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = VoxPromptLogic()
        self.settingsToGUI(loadSettings())

        self.ui.applyButton.connect("clicked(bool)", lambda _: self.onApply(restart=True))
        self.ui.refineButton.connect("clicked(bool)", lambda _: self.onApply(restart=False))
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.undoButton.connect("clicked(bool)", lambda _: self.onHistory(back=True))
        self.ui.redoButton.connect("clicked(bool)", lambda _: self.onHistory(back=False))
        self.ui.showConfidenceCheckBox.connect("toggled(bool)", self.onShowConfidence)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def settingsFromGUI(self) -> Settings:
        ui = self.ui
        return Settings(library=ui.libraryPathLineEdit.currentPath or None,
                        model_dir=ui.modelPathLineEdit.currentPath or None,
                        providers=ui.providersComboBox.currentText, precision=ui.precisionComboBox.currentText,
                        openvino_library=ui.openvinoPathLineEdit.currentPath or None,
                        threads=ui.threadsSpinBox.value, cache_mb=ui.cacheSpinBox.value)

    def settingsToGUI(self, s: Settings) -> None:
        ui = self.ui
        ui.libraryPathLineEdit.currentPath = s.library or ""
        ui.modelPathLineEdit.currentPath = s.model_dir or ""
        ui.providersComboBox.currentText = s.providers
        ui.precisionComboBox.currentText = s.precision
        ui.openvinoPathLineEdit.currentPath = s.openvino_library or ""
        ui.threadsSpinBox.value = s.threads
        ui.cacheSpinBox.value = s.cache_mb

    def cleanup(self):
        self.removeObservers()
        self.onCancel()
        if self._run is not None:
            self._run.wait(30)
        self._timer.stop()
        self.logic.forget()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event):
        # A run must not outlive the scene: cancel it, wait for the worker, free every session.
        self.onCancel()
        if self._run is not None:
            self._run.wait(30)
            self._run = None
        self.logic.forget()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ---- parameter node: the wrapper binds the widgets, guarding against re-entry itself ----
    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")

    def setParameterNode(self, node: Optional[VoxPromptParameterNode]):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = node
        if node:
            self._parameterNodeGuiTag = node.connectGui(self.ui)
            self.addObserver(node, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()

    def updateButtons(self, caller=None, event=None):
        p = self._parameterNode
        busy = self._run is not None and not self._run.done
        ready = bool(p and p.inputVolume and (p.roi or p.positivePoints or p.text.strip()))
        known = bool(p and p.inputVolume and self.logic.segments(p.inputVolume))
        self.ui.applyButton.enabled = ready and not busy
        self.ui.refineButton.enabled = ready and known and not busy
        self.ui.undoButton.enabled = self.ui.redoButton.enabled = known and not busy
        self.ui.cancelButton.enabled = busy

    # ---- running ----
    def onApply(self, restart: bool):
        settings = self.settingsFromGUI()
        saveSettings(settings)
        with slicer.util.tryWithErrorDisplay("VoxPrompt could not start.", waitCursor=True):
            p = self._parameterNode
            if not p.segmentation:
                p.segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "VoxPrompt")
            self.logic.setSettings(settings)
            self.ui.statusLabel.text = "Loading the model ..."
            slicer.app.processEvents()
            self._run = self.logic.start(p.inputVolume, p.roi, p.positivePoints, p.negativePoints, text=p.text,
                                         policy=p.policy, intensity=p.intensity, confidence=p.confidence,
                                         restart=restart, interactive=True)
            self._completeFromVocabulary()
            self.ui.statusLabel.text = f"Running on {self.logic.engine().provider} ..."
            self.ui.progressBar.value = 0
            self._timer.start()
        self.updateButtons()

    def _completeFromVocabulary(self):
        """Completion over the engine's vocabulary, set once the engine exists."""
        if self.ui.textLineEdit.completer() is None:
            names = [c["name"] for c in self.logic.engine().complete("", 5000)]
            completer = qt.QCompleter(names)
            completer.setCaseSensitivity(qt.Qt.CaseInsensitive)
            completer.setFilterMode(qt.Qt.MatchContains)
            self.ui.textLineEdit.setCompleter(completer)

    def onPoll(self):
        run = self._run
        if run is None:
            self._timer.stop()
            return
        self.ui.progressBar.value = int(100 * run.fraction)
        if not run.done:
            return
        self._timer.stop()
        self._run = None
        try:
            result = self.logic.finish(run, self._parameterNode.segmentation, self._parameterNode.showConfidence)
            self.showResult(result)
        except VoxPromptError as e:
            self.ui.statusLabel.text = "Cancelled: the previous result is kept." if run.cancelled else f"Failed: {e}"
            if not run.cancelled:
                slicer.util.errorDisplay(f"VoxPrompt failed: {e}")
        finally:
            self.updateButtons()

    def onHistory(self, back: bool):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("VoxPrompt: " + ("nothing to undo." if back else "nothing to redo.")):
            self.showResult(self.logic.step(p.inputVolume, p.segmentation, back, p.confidence, p.showConfidence))
        self.updateButtons()

    def showResult(self, result):
        st = result.stats
        self.ui.statusLabel.text = (f"{result.provider}: {st['seconds']:.1f} s, {st['slices_encoded']} slices "
                                    f"encoded, {len(result.segments)} object(s).")
        table = self.ui.objectsTable
        table.setRowCount(len(result.segments))
        for row, s in enumerate(result.segments):
            conf = "" if s.confidence is None else f"{s.confidence:.2f}"
            for col, text in enumerate((s.name, str(s.voxels), conf)):
                table.setItem(row, col, qt.QTableWidgetItem(text))

    def onShowConfidence(self, show: bool):
        p = self._parameterNode
        if p and p.inputVolume:
            self.logic.showConfidence(p.inputVolume, show)

    def onCancel(self, *args):
        if self._run is not None and not self._run.done:
            self._run.cancel()
            self.ui.statusLabel.text = "Cancelling ..."


class VoxPromptLogic(ScriptedLoadableModuleLogic):
    """MRML nodes in, segments out, over VoxPromptLib.workflow.SegmentationLogic. No widget needed: usable from
    Slicer's Python console and by the Segment Editor effect."""

    def __init__(self, settings: Optional[Settings] = None):
        ScriptedLoadableModuleLogic.__init__(self)
        self.core = SegmentationLogic(settings or loadSettings())

    def getParameterNode(self):
        return VoxPromptParameterNode(super().getParameterNode())

    def setSettings(self, settings: Settings) -> None:
        self.core.set_settings(settings)

    def engine(self, interactive: bool = False):
        try:
            return self.core.engine()
        except RuntimeMissing as e:
            # Offered on the main thread (this runs from Apply): pip_install blocks with its own progress.
            if not interactive or not slicer.util.confirmOkCancelDisplay(e.message + "\n\nInstall it now?",
                                                                         "VoxPrompt"):
                raise
            slicer.util.pip_install(PINNED_ONNXRUNTIME)
            return self.core.engine()

    def forget(self, volumeNode=None):
        self.core.forget(None if volumeNode is None else volumeNode.GetID())

    def segments(self, volumeNode):
        return self.core.segments(volumeNode.GetID())

    @staticmethod
    def volumeArrays(volumeNode):
        """The voxels as Slicer holds them ([k, j, i], no copy) and the IJK->RAS matrix."""
        m = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(m)
        ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
        return slicer.util.arrayFromVolume(volumeNode), ijk_to_ras

    @staticmethod
    def points(node, positive):
        out = []
        if node is not None:
            for n in range(node.GetNumberOfControlPoints()):
                p = [0.0, 0.0, 0.0]
                node.GetNthControlPointPositionWorld(n, p)
                out.append((p[0], p[1], p[2], positive))
        return out

    @staticmethod
    def rois(*roiNodes):
        out = []
        for node in roiNodes:
            if node is not None:
                b = [0.0] * 6
                node.GetRASBounds(b)
                out.append((node.GetID(), node.GetName(), (b[0], b[2], b[4], b[1], b[3], b[5])))
        return out

    def start(self, volumeNode, roiNode=None, positiveNode=None, negativeNode=None, text=None, policy="reseed",
              intensity="auto", confidence=False, restart=False, interactive=False, objects=None):
        """Starts a run in the background for the objects these inputs describe (or `objects`, as the effect
        gives them). Raises before anything runs: NotEnoughMemory, or the library's error for a prompt."""
        if volumeNode is None:
            raise ValueError("select a volume")
        self.engine(interactive)
        if objects is None:
            objects = objects_from_inputs(self.rois(roiNode),
                                          self.points(positiveNode, True) + self.points(negativeNode, False), text)
        array, ijk_to_ras = self.volumeArrays(volumeNode)
        run = self.core.start(volumeNode.GetID(), array, ijk_to_ras, objects,
                              version=volumeNode.GetImageData().GetMTime(), spacing=volumeNode.GetSpacing(),
                              intensity=intensity, policy=policy, confidence=confidence, restart=restart)
        run.volumeNode = volumeNode
        return run

    def finish(self, run, segmentationNode, showConfidence=False):
        """Writes a finished run into the segmentation (and the confidence volume); raises its error."""
        result = self.core.finish(run)
        self.write(result, run.volumeNode, segmentationNode, showConfidence)
        return result

    def step(self, volumeNode, segmentationNode, back, confidence=False, showConfidence=False):
        """The session's undo (back) or redo, written into the segmentation."""
        key = volumeNode.GetID()
        result = self.core.undo(key, confidence) if back else self.core.redo(key, confidence)
        self.write(result, volumeNode, segmentationNode, showConfidence)
        return result

    def write(self, result, volumeNode, segmentationNode, showConfidence=False):
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentation = segmentationNode.GetSegmentation()
        for segmentId in result.removed:
            if segmentation.GetSegment(segmentId):
                segmentation.RemoveSegment(segmentId)
        for s in result.segments:
            self.writeSegment(segmentationNode, s.segment_id, s, volumeNode)
        if result.confidence is not None:
            self.confidenceVolume(volumeNode, result.confidence, showConfidence)
        logging.info(f"VoxPrompt on {result.provider}: {result.stats}")

    @staticmethod
    def writeSegment(segmentationNode, segmentId, s, volumeNode):
        """One object's mask into segment `segmentId` (made if missing), named, coloured and coded."""
        segmentation = segmentationNode.GetSegmentation()
        if not segmentation.GetSegment(segmentId):
            segmentation.AddEmptySegment(segmentId, s.name)
        segment = segmentation.GetSegment(segmentId)
        segment.SetName(s.name)
        if s.terminology:
            segment.SetTag(segment.GetTerminologyEntryTagName(), s.terminology)
        if s.color:
            segment.SetColor(*s.color)
        slicer.util.updateSegmentBinaryLabelmapFromArray(s.mask, segmentationNode, segmentId, volumeNode)

    @staticmethod
    def confidenceColorNode():
        """The colour table of confidence maps (VoxPromptLib.workflow.confidence_colors), made once a scene."""
        node = slicer.mrmlScene.GetFirstNodeByName(CONFIDENCE_COLORS)
        if node is None:
            colors = confidence_colors(256)
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLColorTableNode", CONFIDENCE_COLORS)
            node.SetTypeToUser()
            node.SetNumberOfColors(len(colors))
            node.SetNamesInitialised(True)
            for n, (r, g, b, a) in enumerate(colors):
                node.SetColor(n, f"{n / (len(colors) - 1):.2f}", r, g, b, a)
        return node

    def confidenceVolume(self, volumeNode, conf, show=False):
        """The confidence map as a scalar volume on the input's grid, shown through its colour table over [0, 1],
        as the foreground layer when asked."""
        name = f"{volumeNode.GetName()} VoxPrompt confidence"
        out = slicer.mrmlScene.GetFirstNodeByName(name) or slicer.mrmlScene.AddNewNodeByClass(
            "vtkMRMLScalarVolumeNode", name)
        m = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(m)
        out.SetIJKToRASMatrix(m)
        slicer.util.updateVolumeFromArray(out, conf)
        out.CreateDefaultDisplayNodes()
        display = out.GetDisplayNode()
        display.SetAndObserveColorNodeID(self.confidenceColorNode().GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(0.0, 1.0)
        if show:
            self.showConfidence(volumeNode, True)
        return out

    @staticmethod
    def showConfidence(volumeNode, show: bool):
        out = slicer.mrmlScene.GetFirstNodeByName(f"{volumeNode.GetName()} VoxPrompt confidence")
        if out is None:
            return
        if show:
            slicer.util.setSliceViewerLayers(background=volumeNode, foreground=out, foregroundOpacity=0.5)
        else:
            slicer.util.setSliceViewerLayers(foreground=None)


class VoxPromptTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Developer mode > Reload and Test): the committed TotalSegmentator fixture, liver box and
    spleen by text, through the Logic and through the Widget."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_liver_box_and_spleen_text_through_the_logic()
        self.setUp()
        self.test_the_widget_applies_and_refines_into_the_same_segments()

    def _case(self):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        ct = slicer.util.loadVolume(os.path.join(repo, "tests/fixtures/data/example_ct_sm.nii.gz"))
        seg = slicer.util.loadLabelVolume(os.path.join(repo, "tests/fixtures/data/example_seg.nii.gz"))
        labels = slicer.util.arrayFromVolume(seg)
        liver = labels == 5
        k, j, i = np.nonzero(liver)
        m = vtk.vtkMatrix4x4()
        ct.GetIJKToRASMatrix(m)
        corners = [m.MultiplyPoint([float(a), float(b), float(c), 1.0])[:3]
                   for a, b, c in ((i.min(), j.min(), k.min()), (i.max(), j.max(), k.max()))]
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "liver box")
        lo, hi = np.minimum(*corners), np.maximum(*corners)
        roi.SetCenter(((lo + hi) / 2).tolist())
        roi.SetSize((hi - lo).tolist())
        return ct, roi, liver, labels == 1

    def _segment(self, segmentation, name, ct):
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(name)
        self.assertTrue(segmentId, f"no segment {name!r}")
        return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, ct)

    def test_liver_box_and_spleen_text_through_the_logic(self):
        ct, roi, liver, spleen = self._case()
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = VoxPromptLogic(Settings(threads=2))
        run = logic.start(ct, roi, text="liver; spleen", intensity="ct", confidence=True)
        run.wait()
        result = logic.finish(run, segmentation, showConfidence=True)
        d_liver = dice(self._segment(segmentation, "liver", ct), liver)
        d_spleen = dice(self._segment(segmentation, "spleen", ct), spleen)
        self.delayDisplay(f"VoxPrompt liver Dice {d_liver:.4f}, spleen {d_spleen:.4f}, on {result.provider}")
        self.assertGreaterEqual(d_liver, 0.9)
        self.assertGreaterEqual(d_spleen, 0.8)
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 2)
        conf = slicer.mrmlScene.GetFirstNodeByName(f"{ct.GetName()} VoxPrompt confidence")
        self.assertIsNotNone(conf)
        self.assertEqual(conf.GetDisplayNode().GetColorNode().GetName(), CONFIDENCE_COLORS)
        logic.forget()

    def test_the_widget_applies_and_refines_into_the_same_segments(self):
        ct, roi, liver, _ = self._case()
        slicer.util.selectModule("VoxPrompt")
        widget = slicer.modules.voxprompt.widgetRepresentation().self()
        p = widget._parameterNode
        p.inputVolume, p.roi, p.intensity, p.text = ct, roi, "ct", ""
        widget.ui.applyButton.click()
        while widget._run is not None:
            slicer.app.processEvents()
        segmentation = p.segmentation
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 1)
        self.assertGreaterEqual(dice(self._segment(segmentation, "liver box", ct), liver), 0.9)
        self.assertTrue(widget.ui.refineButton.enabled)
        widget.ui.refineButton.click()
        while widget._run is not None:
            slicer.app.processEvents()
        self.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 1)
        self.assertIn("0 slices encoded", widget.ui.statusLabel.text)
