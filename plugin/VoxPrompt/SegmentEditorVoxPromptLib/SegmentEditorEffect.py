"""VoxPrompt as a Segment Editor effect: the selected segment from a box, points or words, undoable with Ctrl+Z.

The effect is loaded by path (qSlicerSegmentEditorScriptedEffect.setPythonSource) and uses the module's Logic,
so it adds no inference of its own. It writes through scriptedEffect.modifySelectedSegmentByLabelmap after
scriptedEffect.saveStateForUndo(): the Segment Editor's undo then restores the segment as it was before the run,
and its masking settings (editable area, overwrite other segments) apply to the result.
"""
import os

import qt
import slicer
import vtk
import vtk.util.numpy_support
from SegmentEditorEffects import AbstractScriptedSegmentEditorEffect

ICON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Resources", "Icons",
                    "VoxPrompt.png")


class SegmentEditorEffect(AbstractScriptedSegmentEditorEffect):
    def __init__(self, scriptedEffect):
        scriptedEffect.name = "VoxPrompt"
        scriptedEffect.perSegment = True
        scriptedEffect.requireSegments = True
        AbstractScriptedSegmentEditorEffect.__init__(self, scriptedEffect)
        self._logic = None
        self._run = None
        self._target = None
        self._timer = qt.QTimer()
        self._timer.setInterval(100)
        self._timer.connect("timeout()", self.onPoll)

    def clone(self):
        import qSlicerSegmentationsEditorEffectsPythonQt as effects

        clonedEffect = effects.qSlicerSegmentEditorScriptedEffect(None)
        clonedEffect.setPythonSource(__file__.replace("\\", "/"))
        return clonedEffect

    def icon(self):
        return qt.QIcon(ICON) if os.path.exists(ICON) else qt.QIcon()

    def helpText(self):
        return ("<html>Segments the selected segment in 3D with VoxPrompt: a markups ROI around the object, "
                "positive / negative point lists, or its name (\"liver\"). Apply replaces the segment; Ctrl+Z "
                "undoes it. The VoxPrompt module does several objects at once.</html>")

    def logic(self):
        if self._logic is None:
            from VoxPrompt import VoxPromptLogic

            self._logic = VoxPromptLogic()
        return self._logic

    def setupOptionsFrame(self):
        form = qt.QFormLayout()
        self.roiSelector = self._selector("vtkMRMLMarkupsROINode", "A markups ROI around the object")
        self.positiveSelector = self._selector("vtkMRMLMarkupsFiducialNode", "Points inside the object")
        self.negativeSelector = self._selector("vtkMRMLMarkupsFiducialNode", "Points outside the object")
        self.textEdit = qt.QLineEdit()
        self.textEdit.placeholderText = "or its name: liver, left kidney ..."
        self.applyButton = qt.QPushButton("Apply")
        self.cancelButton = qt.QPushButton("Cancel")
        self.cancelButton.enabled = False
        self.progressBar = qt.QProgressBar()
        self.statusLabel = qt.QLabel("")
        self.statusLabel.wordWrap = True
        form.addRow("Box (ROI):", self.roiSelector)
        form.addRow("Positive points:", self.positiveSelector)
        form.addRow("Negative points:", self.negativeSelector)
        form.addRow("Text:", self.textEdit)
        row = qt.QHBoxLayout()
        row.addWidget(self.applyButton)
        row.addWidget(self.cancelButton)
        form.addRow(row)
        form.addRow(self.progressBar)
        form.addRow(self.statusLabel)
        frame = qt.QWidget()
        frame.setLayout(form)
        self.scriptedEffect.addOptionsWidget(frame)
        self.applyButton.connect("clicked()", self.onApply)
        self.cancelButton.connect("clicked()", self.onCancel)

    @staticmethod
    def _selector(nodeType, tip):
        s = slicer.qMRMLNodeComboBox()
        s.nodeTypes = [nodeType]
        s.noneEnabled = True
        s.addEnabled = False
        s.removeEnabled = False
        s.setMRMLScene(slicer.mrmlScene)
        s.setToolTip(tip)
        return s

    def createCursor(self, widget):
        return slicer.util.mainWindow().cursor

    def sourceVolume(self):
        p = self.scriptedEffect.parameterSetNode()
        # GetSourceVolumeNode since Slicer 5.2, GetMasterVolumeNode before.
        return p.GetSourceVolumeNode() if hasattr(p, "GetSourceVolumeNode") else p.GetMasterVolumeNode()

    def onApply(self):
        from VoxPromptLib.workflow import objects_from_inputs

        volume = self.sourceVolume()
        p = self.scriptedEffect.parameterSetNode()
        segmentId = p.GetSelectedSegmentID()
        if volume is None or not segmentId:
            self.statusLabel.text = "Select a source volume and a segment."
            return
        logic = self.logic()
        rois = logic.rois(self.roiSelector.currentNode())
        points = logic.points(self.positiveSelector.currentNode(), True) + logic.points(
            self.negativeSelector.currentNode(), False)
        phrases = (self.textEdit.text or "").split(";")[:1]  # one object: the selected segment
        objects = objects_from_inputs(rois[:1], points, phrases[0] if phrases else None)[:1]
        for o in objects:
            o.key = f"effect:{p.GetSegmentationNode().GetID()}:{segmentId}"  # refines while the segment is kept
        with slicer.util.tryWithErrorDisplay("VoxPrompt could not start.", waitCursor=True):
            self._run = logic.start(volume, objects=objects, intensity="auto", interactive=True)
            self._target = (p.GetSegmentationNode(), segmentId, volume)
            self.applyButton.enabled, self.cancelButton.enabled = False, True
            self.statusLabel.text = f"Running on {logic.engine().provider} ..."
            self._timer.start()

    def onPoll(self):
        run = self._run
        if run is None:
            self._timer.stop()
            return
        self.progressBar.value = int(100 * run.fraction)
        if not run.done:
            return
        self._timer.stop()
        self._run = None
        self.applyButton.enabled, self.cancelButton.enabled = True, False
        try:
            result = self.logic().core.finish(run)
        except Exception as e:
            self.statusLabel.text = "Cancelled." if run.cancelled else f"Failed: {e}"
            return
        segmentationNode, segmentId, volume = self._target
        (segment,) = result.segments
        self.writeSelectedSegment(segment.mask, volume)
        self.statusLabel.text = (f"{result.provider}: {result.stats['seconds']:.1f} s, confidence "
                                 f"{segment.confidence if segment.confidence is not None else 'n/a'}.")

    def writeSelectedSegment(self, mask, volume):
        """The run's mask into the selected segment, as one Segment Editor undo step."""
        labelmap = slicer.vtkOrientedImageData()
        slicer.vtkSlicerSegmentationsModuleLogic.CreateOrientedImageDataFromVolumeNode(volume, labelmap)
        labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        voxels = vtk.util.numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
        voxels[:] = mask.reshape(-1)  # [k, j, i] C order is VTK's point order (i fastest)
        labelmap.Modified()
        # The snapshot comes first: Ctrl+Z in the Segment Editor returns to the segment before this run.
        self.scriptedEffect.saveStateForUndo()
        self.scriptedEffect.modifySelectedSegmentByLabelmap(
            labelmap, slicer.qSlicerSegmentEditorAbstractEffect.ModificationModeSet)

    def onCancel(self):
        if self._run is not None and not self._run.done:
            self._run.cancel()
            self.statusLabel.text = "Cancelling ..."

    def deactivate(self):
        self.onCancel()
