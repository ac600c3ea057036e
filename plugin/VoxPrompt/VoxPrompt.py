"""VoxPrompt for 3D Slicer: prompt-based 3D segmentation (box ROI, +/- points) by libvoxprompt through ctypes.

Thin by design: this file is UI and MRML marshalling only. Everything that talks to the library lives in
VoxPromptLib (Slicer-free, tested by plugin/tests without Slicer). Runs happen on a worker thread (ctypes
releases the GIL), a QTimer polls their progress, Cancel calls vxp_session_cancel.
"""
from __future__ import annotations

import logging
import os

import ctk
import numpy as np
import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from VoxPromptLib import (PINNED_ONNXRUNTIME, BackgroundRun, Engine, PromptSync, RuntimeMissing, VoxPromptError,  # noqa: F401
                          dice, open_engine)
from VoxPromptLib.logic import segment_identity

SETTINGS_LIBRARY = "VoxPrompt/LibraryPath"
SETTINGS_MODEL = "VoxPrompt/ModelDir"
SEGMENT_NAME = "VoxPrompt"
POLICY_LABELS = [("reseed", "Re-seeded (default)"), ("reference", "Reference (CVPR24 middle-out)"),
                 ("reseed-in-box", "Re-seeded, inside the box only")]
INTENSITY_LABELS = [("auto", "Auto (CT if values < -500 exist)"), ("ct", "CT window 40/400"),
                    ("mr", "MR 0.5-99.5 percentiles")]


class VoxPrompt(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "VoxPrompt"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["VoxPrompt developers"]
        self.parent.helpText = (
            "Segments one object in 3D from a box (a markups ROI) and optional positive / negative points, with "
            "LiteMedSAM run by the VoxPrompt engine (ONNX Runtime, no Python inference). The result goes into a "
            "segment; an optional confidence map (0 to 1 per voxel) into a scalar volume. Add points and press "
            "Apply again to refine: slices already encoded are not encoded again.")
        self.parent.acknowledgementText = "LiteMedSAM weights: bowang-lab (Apache-2.0)."


class VoxPromptWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._updatingGUI = False
        self._run = None
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self.onPoll)

    # ---- UI ----
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = VoxPromptLogic()

        inputs = ctk.ctkCollapsibleButton()
        inputs.text = "Inputs"
        self.layout.addWidget(inputs)
        form = qt.QFormLayout(inputs)
        self.volumeSelector = self._selector(["vtkMRMLScalarVolumeNode"], "Volume to segment")
        self.roiSelector = self._selector(["vtkMRMLMarkupsROINode"], "Box around the object")
        self.positiveSelector = self._selector(["vtkMRMLMarkupsFiducialNode"], "Points inside the object", True)
        self.negativeSelector = self._selector(["vtkMRMLMarkupsFiducialNode"], "Points outside the object", True)
        self.segmentationSelector = self._selector(["vtkMRMLSegmentationNode"], "Where the segment goes",
                                                   create=True)
        self.textEdit = qt.QLineEdit()
        self.textEdit.placeholderText = "or name it: left kidney, liver, spleen ..."
        self.textEdit.toolTip = ("Name the object in words (CT): the structure is found from anatomy alone, or, "
                                 "with a box, kept to where that structure can be")
        form.addRow("Volume:", self.volumeSelector)
        form.addRow("Text:", self.textEdit)
        form.addRow("Box (ROI):", self.roiSelector)
        form.addRow("Positive points:", self.positiveSelector)
        form.addRow("Negative points:", self.negativeSelector)
        form.addRow("Segmentation:", self.segmentationSelector)

        options = ctk.ctkCollapsibleButton()
        options.text = "Options"
        self.layout.addWidget(options)
        oform = qt.QFormLayout(options)
        self.policyCombo = qt.QComboBox()
        for key, label in POLICY_LABELS:
            self.policyCombo.addItem(label, key)
        self.intensityCombo = qt.QComboBox()
        for key, label in INTENSITY_LABELS:
            self.intensityCombo.addItem(label, key)
        self.confidenceCheck = qt.QCheckBox("Also write the confidence map")
        self.libraryPath = ctk.ctkPathLineEdit()
        self.libraryPath.filters = ctk.ctkPathLineEdit.Files
        self.libraryPath.nameFilters = ["libvoxprompt.so*"]
        self.libraryPath.currentPath = qt.QSettings().value(SETTINGS_LIBRARY, os.environ.get("VXP_LIB", ""))
        self.modelPath = ctk.ctkPathLineEdit()
        self.modelPath.filters = ctk.ctkPathLineEdit.Dirs
        self.modelPath.currentPath = qt.QSettings().value(SETTINGS_MODEL, "")
        oform.addRow("Policy:", self.policyCombo)
        oform.addRow("Intensity:", self.intensityCombo)
        oform.addRow(self.confidenceCheck)
        oform.addRow("libvoxprompt.so:", self.libraryPath)
        oform.addRow("Model package:", self.modelPath)

        self.applyButton = qt.QPushButton("Apply")
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.enabled = False
        self.progressBar = qt.QProgressBar()
        self.progressBar.setRange(0, 100)
        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
        row = qt.QHBoxLayout()
        row.addWidget(self.applyButton)
        row.addWidget(self.cancelButton)
        self.layout.addLayout(row)
        self.layout.addWidget(self.progressBar)
        self.layout.addWidget(self.statusLabel)
        self.layout.addStretch(1)

        for w in (self.volumeSelector, self.roiSelector, self.positiveSelector, self.negativeSelector,
                  self.segmentationSelector):
            w.connect("currentNodeChanged(vtkMRMLNode*)", self.updateParameterNodeFromGUI)
        for w in (self.policyCombo, self.intensityCombo):
            w.connect("currentIndexChanged(int)", self.updateParameterNodeFromGUI)
        self.confidenceCheck.connect("toggled(bool)", self.updateParameterNodeFromGUI)
        self.textEdit.connect("textChanged(QString)", self.updateParameterNodeFromGUI)
        self.applyButton.connect("clicked(bool)", self.onApply)
        self.cancelButton.connect("clicked(bool)", self.onCancel)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def _selector(self, classes, tip, noneEnabled=False, create=False):
        s = slicer.qMRMLNodeComboBox()
        s.nodeTypes = classes
        s.selectNodeUponCreation = True
        s.addEnabled = create
        s.removeEnabled = False
        s.noneEnabled = noneEnabled
        s.showHidden = False
        s.setMRMLScene(slicer.mrmlScene)
        s.setToolTip(tip)
        return s

    def cleanup(self):
        self.removeObservers()
        if self._run is not None and not self._run.done:
            self._run.cancel()
            self._run.wait(30)
        self._timer.stop()

    def enter(self):
        self.initializeParameterNode()

    def onSceneStartClose(self, caller, event):
        self.onCancel()
        self.logic.forgetSessions()
        self._parameterNode = None

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ---- parameter node, with a re-entrancy guard ----
    def initializeParameterNode(self):
        self._parameterNode = self.logic.getParameterNode()
        if not self._parameterNode.GetNodeReference("Volume"):
            node = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if node:
                self._parameterNode.SetNodeReferenceID("Volume", node.GetID())
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None):
        if self._parameterNode is None or self._updatingGUI:
            return
        self._updatingGUI = True
        try:
            p = self._parameterNode
            self.volumeSelector.setCurrentNode(p.GetNodeReference("Volume"))
            self.roiSelector.setCurrentNode(p.GetNodeReference("ROI"))
            self.positiveSelector.setCurrentNode(p.GetNodeReference("Positive"))
            self.negativeSelector.setCurrentNode(p.GetNodeReference("Negative"))
            self.segmentationSelector.setCurrentNode(p.GetNodeReference("Segmentation"))
            self.policyCombo.setCurrentIndex(max(0, self.policyCombo.findData(p.GetParameter("Policy") or "reseed")))
            self.intensityCombo.setCurrentIndex(max(0, self.intensityCombo.findData(p.GetParameter("Intensity")
                                                                                       or "auto")))
            self.confidenceCheck.checked = p.GetParameter("Confidence") == "true"
            busy = self._run is not None and not self._run.done
            if self.textEdit.text != (p.GetParameter("Text") or ""):
                self.textEdit.text = p.GetParameter("Text") or ""
            self.applyButton.enabled = not busy and bool(p.GetNodeReference("Volume")) and bool(
                p.GetNodeReference("ROI") or p.GetNodeReference("Positive") or (p.GetParameter("Text") or "").strip())
            self.cancelButton.enabled = busy
        finally:
            self._updatingGUI = False

    def updateParameterNodeFromGUI(self, *args):
        if self._parameterNode is None or self._updatingGUI:
            return
        p = self._parameterNode
        wasModified = p.StartModify()
        for ref, sel in (("Volume", self.volumeSelector), ("ROI", self.roiSelector),
                         ("Positive", self.positiveSelector), ("Negative", self.negativeSelector),
                         ("Segmentation", self.segmentationSelector)):
            p.SetNodeReferenceID(ref, sel.currentNodeID)
        p.SetParameter("Policy", self.policyCombo.currentData)
        p.SetParameter("Intensity", self.intensityCombo.currentData)
        p.SetParameter("Confidence", "true" if self.confidenceCheck.checked else "false")
        p.SetParameter("Text", self.textEdit.text)
        p.EndModify(wasModified)
        self.updateGUIFromParameterNode()

    # ---- running ----
    def onApply(self):
        qt.QSettings().setValue(SETTINGS_LIBRARY, self.libraryPath.currentPath)
        qt.QSettings().setValue(SETTINGS_MODEL, self.modelPath.currentPath)
        with slicer.util.tryWithErrorDisplay("VoxPrompt could not start.", waitCursor=True):
            p = self._parameterNode
            if not self.segmentationSelector.currentNode():
                seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
                self.segmentationSelector.setCurrentNode(seg)
            self._run = self.logic.start(
                p.GetNodeReference("Volume"), p.GetNodeReference("ROI"), p.GetNodeReference("Positive"),
                p.GetNodeReference("Negative"), policy=self.policyCombo.currentData,
                intensity=self.intensityCombo.currentData, confidence=self.confidenceCheck.checked,
                library=self.libraryPath.currentPath or None, model=self.modelPath.currentPath or None,
                text=self.textEdit.text)
            self._completeFromVocabulary()
            self.statusLabel.text = f"Running on {self.logic.engine().provider} ..."
            self.progressBar.value = 0
            self._timer.start()
        self.updateGUIFromParameterNode()

    def _completeFromVocabulary(self):
        """Completion over the engine's vocabulary, set once the engine exists."""
        if self.textEdit.completer() is None:
            names = [c["name"] for c in self.logic.engine().complete("", 5000)]
            completer = qt.QCompleter(names)
            completer.setCaseSensitivity(qt.Qt.CaseInsensitive)
            completer.setFilterMode(qt.Qt.MatchContains)
            self.textEdit.setCompleter(completer)

    def onPoll(self):
        run = self._run
        if run is None:
            self._timer.stop()
            return
        self.progressBar.value = int(100 * run.fraction)
        if not run.done:
            return
        self._timer.stop()
        try:
            stats = self.logic.finish(run, self.segmentationSelector.currentNode())
            self.statusLabel.text = (f"Done in {stats['seconds']:.1f} s: {stats['slices_encoded']} slices encoded, "
                                     f"{stats['decoder_runs']} decoder runs.")
        except VoxPromptError as e:
            self.statusLabel.text = "Cancelled." if run.cancelled else f"Failed: {e}"
            if not run.cancelled:
                slicer.util.errorDisplay(f"VoxPrompt failed: {e}")
        finally:
            self._run = None
            self.updateGUIFromParameterNode()

    def onCancel(self):
        if self._run is not None and not self._run.done:
            self._run.cancel()
            self.statusLabel.text = "Cancelling ..."


class VoxPromptLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into VoxPromptLib calls. No widget needed: usable from Slicer's Python console."""

    # Process-wide: Slicer may reload this module; the library and its engine must stay loaded.
    _engines: dict = {}

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self._sessions = {}  # volume node id -> (volume MTime, Session, PromptSync)
        self._engine_key = None

    def engine(self, library=None, model=None) -> Engine:
        key = (library, model) if (library or model) else self._engine_key
        if key not in VoxPromptLogic._engines:
            try:
                VoxPromptLogic._engines[key] = open_engine(model_dir=model, library_path=library)
            except RuntimeMissing as e:
                # Offered on the main thread (this runs from Apply): pip_install blocks with its own progress.
                if not slicer.util.confirmOkCancelDisplay(e.message + "\n\nInstall it now?", "VoxPrompt"):
                    raise
                slicer.util.pip_install(PINNED_ONNXRUNTIME)
                VoxPromptLogic._engines[key] = open_engine(model_dir=model, library_path=library)
        self._engine_key = key
        return VoxPromptLogic._engines[key]

    def forgetSessions(self):
        for _, session, _ in self._sessions.values():
            session.close()
        self._sessions = {}

    @staticmethod
    def volumeArrays(volumeNode):
        """The voxels as Slicer holds them ([k, j, i], no copy) and the IJK->RAS matrix."""
        m = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(m)
        ijk_to_ras = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
        return slicer.util.arrayFromVolume(volumeNode), ijk_to_ras

    def session(self, volumeNode, intensity, library=None, model=None):
        engine = self.engine(library, model)
        mtime = volumeNode.GetImageData().GetMTime()
        known = self._sessions.get(volumeNode.GetID())
        if known and known[0] == mtime:
            return known[1], known[2]
        if known:
            known[1].close()
        array, ijk_to_ras = self.volumeArrays(volumeNode)
        s = engine.session(array, ijk_to_ras, volumeNode.GetSpacing(), intensity=intensity)
        sync = PromptSync(label=1)
        self._sessions[volumeNode.GetID()] = (mtime, s, sync)
        return s, sync

    @staticmethod
    def _points(node, positive):
        out = []
        if node is not None:
            for n in range(node.GetNumberOfControlPoints()):
                p = [0.0, 0.0, 0.0]
                node.GetNthControlPointPositionWorld(n, p)
                out.append((p[0], p[1], p[2], positive))
        return out

    def start(self, volumeNode, roiNode=None, positiveNode=None, negativeNode=None, policy="reseed",
              intensity="auto", confidence=False, library=None, model=None, text=None) -> BackgroundRun:
        """Adds what changed since the last run on this volume and starts a run in the background. Only new
        points are added, so the library refines the object instead of propagating it again."""
        if volumeNode is None:
            raise ValueError("select a volume")
        session, sync = self.session(volumeNode, intensity, library, model)
        box = None
        if roiNode is not None:
            b = [0.0] * 6
            roiNode.GetRASBounds(b)
            box = (b[0], b[2], b[4], b[1], b[3], b[5])
        session.set_policy(policy)
        sync.apply(session, box, self._points(positiveNode, True) + self._points(negativeNode, False), text)
        run = BackgroundRun(session, confidence)
        run.volumeNode = volumeNode
        # The segment is named after the concept, with its SNOMED-CT terminology where the vocabulary has it.
        run.identity = segment_identity(self.engine(library, model).lookup(text)) if (text or "").strip() else None
        return run

    def finish(self, run: BackgroundRun, segmentationNode) -> dict:
        """Writes a finished run into the segment (and the confidence volume); raises its error."""
        value = run.result()
        mask, conf = value if isinstance(value, tuple) else (value, None)
        volumeNode = run.volumeNode
        segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        segmentation = segmentationNode.GetSegmentation()
        name, term, color = run.identity or (SEGMENT_NAME, None, None)
        segmentId = segmentation.GetSegmentIdBySegmentName(name) or segmentation.AddEmptySegment(name, name)
        segment = segmentation.GetSegment(segmentId)
        if term:
            segment.SetTag(segment.GetTerminologyEntryTagName(), term)
        if color:
            segment.SetColor(*color)
        slicer.util.updateSegmentBinaryLabelmapFromArray(mask, segmentationNode, segmentId, volumeNode)
        if conf is not None:
            name = f"{volumeNode.GetName()} VoxPrompt confidence"
            out = slicer.mrmlScene.GetFirstNodeByName(name) or slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLScalarVolumeNode", name)
            m = vtk.vtkMatrix4x4()
            volumeNode.GetIJKToRASMatrix(m)
            out.SetIJKToRASMatrix(m)
            slicer.util.updateVolumeFromArray(out, conf)
        stats = run.session.stats()
        logging.info(f"VoxPrompt: {stats}")
        return stats


class VoxPromptTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Developer mode > Reload and Test): the committed TotalSegmentator fixture, liver box."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_liver_from_a_box()

    def test_liver_from_a_box(self):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        ct = slicer.util.loadVolume(os.path.join(repo, "tests/fixtures/data/example_ct_sm.nii.gz"))
        seg = slicer.util.loadLabelVolume(os.path.join(repo, "tests/fixtures/data/example_seg.nii.gz"))
        liver = slicer.util.arrayFromVolume(seg) == 5
        k, j, i = np.nonzero(liver)
        corners = []
        m = vtk.vtkMatrix4x4()
        ct.GetIJKToRASMatrix(m)
        for ijk in ((i.min(), j.min(), k.min()), (i.max(), j.max(), k.max())):
            corners.append(m.MultiplyPoint([float(ijk[0]), float(ijk[1]), float(ijk[2]), 1.0])[:3])
        roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode")
        lo = np.minimum(corners[0], corners[1])
        hi = np.maximum(corners[0], corners[1])
        roi.SetCenter(((lo + hi) / 2).tolist())
        roi.SetSize((hi - lo).tolist())
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        logic = VoxPromptLogic()
        run = logic.start(ct, roi, policy="reference", intensity="ct")
        stats = logic.finish(run, segmentation)
        segmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName(SEGMENT_NAME)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, segmentId, ct)
        d = dice(mask, liver)
        self.delayDisplay(f"VoxPrompt liver Dice {d:.4f}, {stats['slices_encoded']} slices encoded")
        self.assertGreaterEqual(d, 0.92)
