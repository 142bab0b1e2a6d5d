"""Rock and ore image classification on the shared Trainer: folders, crops, augmentation, zoo, CAM, report.

    split = pp.imagery.ImageFolderSplit("data_samples/ore_images", size=224, group_by=None)
    model = pp.imagery.build_classifier("mobilenet_v2", len(split.classes), attention="se")
    history = pp.training.Trainer.preset("images_frozen_warmup", model).fit(split.train, split.val)
"""

from prospect.imagery.baseline import BASELINE_MODELS, ImageFeatures, classical_baseline
from prospect.imagery.cam import grad_cam, plot_cam, score_cam
from prospect.imagery.datasets import (
                                       IMAGENET_MEAN,
                                       IMAGENET_STD,
                                       ImageDataset,
                                       ImageFolderSplit,
                                       choose_crops,
                                       crop_origins,
                                       crop_transforms,
                                       eval_transforms,
                                       train_transforms,
)
from prospect.imagery.hybrid import HybridClassifier, average_probabilities, network_features, pretrain_images
from prospect.imagery.patches import augment_offline, crop_patches
from prospect.imagery.report import classification_report, plot_confusion, study_report
from prospect.imagery.zoo import (
                                  INPUT_SIZE,
                                  build_classifier,
                                  headless,
                                  is_weights_name,
                                  list_classifiers,
                                  load_weights,
                                  weights_file,
)

__all__ = ["ImageFolderSplit", "ImageDataset", "eval_transforms", "train_transforms", "IMAGENET_MEAN", "IMAGENET_STD",
           "crop_patches", "augment_offline", "build_classifier", "list_classifiers", "load_weights", "INPUT_SIZE",
           "grad_cam", "score_cam", "plot_cam", "classification_report", "plot_confusion", "study_report",
           "ImageFeatures", "classical_baseline", "BASELINE_MODELS", "crop_transforms", "crop_origins", "choose_crops",
           "HybridClassifier", "average_probabilities", "network_features", "pretrain_images", "headless",
           "weights_file", "is_weights_name"]
