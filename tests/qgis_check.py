"""Open a QGIS project headless and describe it as JSON (run by the system Python that has python3-qgis).

    /usr/bin/python3 tests/qgis_check.py out/project.qgs render.png

Prints, for every layer: name, valid, kind, renderer, labels, legend labels, source, CRS; then the render of
the project's extent: its size and how many distinct colours it holds. Used by tests/test_qgis.py.
"""

import json
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402


def legend(layer):
    if isinstance(layer, QgsRasterLayer):
        return [label for label, _ in layer.legendSymbologyItems()]
    renderer = layer.renderer()
    return [item.label() for item in renderer.legendSymbolItems()] if renderer else []


def main(path, image):
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    ok = project.read(path)
    layers = []
    root = project.layerTreeRoot()
    for node in root.findLayers():
        layer = node.layer()
        entry = {"name": node.name(), "valid": bool(layer and layer.isValid()), "checked": node.isVisible(),
                 "group": node.parent().name() if node.parent() is not root else None}
        if layer is not None:
            entry.update(kind="raster" if isinstance(layer, QgsRasterLayer) else "vector",
                         source=layer.source(), crs=layer.crs().authid(),
                         renderer=layer.renderer().type() if layer.renderer() else None, legend=legend(layer))
            if isinstance(layer, QgsVectorLayer):
                entry.update(labels=layer.labelsEnabled(), features=layer.featureCount(),
                             label_field=layer.labeling().settings().fieldName if layer.labelsEnabled() else None)
            else:
                entry.update(band=getattr(layer.renderer(), "band", lambda: None)()
                             if hasattr(layer.renderer(), "band") else None)
        layers.append(entry)
    settings = QgsMapSettings()
    settings.setLayers([n.layer() for n in root.findLayers() if n.isVisible() and n.layer() is not None])
    settings.setDestinationCrs(project.crs())
    settings.setOutputSize(QSize(400, 400))
    settings.setBackgroundColor(QColor("white"))
    extent = project.viewSettings().defaultViewExtent()
    settings.setExtent(extent if not extent.isEmpty() else settings.fullExtent())
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    rendered = job.renderedImage()
    rendered.save(image)
    colours = {rendered.pixel(x, y) for x in range(0, 400, 2) for y in range(0, 400, 2)}
    print(json.dumps({"read": ok, "crs": project.crs().authid(), "title": project.title(),
                      "absolute_paths": project.readBoolEntry("Paths", "/Absolute")[0], "layers": layers,
                      "render": {"width": rendered.width(), "height": rendered.height(), "colours": len(colours)}}))
    app.exitQgis()


if __name__ == "__main__":
    main(*sys.argv[1:3])
