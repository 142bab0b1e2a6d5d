"""``report.md`` of a prospectivity run: our tables beside the paper's, the figures, what the run reduced."""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prospect.files import atomic_output
from prospect.grid import crs_label

__all__ = ["write", "PAPERS"]

# Numbers printed in the MFAF paper (Qin-hang belt, Jinshan area): Table 2 (AUC, Z_AUC) and section 4.1 (3)-(4).
# The paper's tables of results (its Tables 3-7) are in the run file, row by row ("paper = {...}").
PAPERS: dict[str, dict[str, Any]] = {
    "mfaf_qinhang": {
        "citation": "the MFAF paper (deposit prediction in the Qin-hang metallogenic belt), Table 2 and section 4.1",
        "table2": {"Au": (0.6024, 2.8395), "B": (0.5901, 2.4839), "Sn": (0.6065, 2.9595), "Cu": (0.6311, 3.6977),
                   "Ag": (0.6762, 5.1563), "Ba": (0.6147, 3.2020), "Mn": (0.5573, 1.5617), "Pb": (0.5778, 2.1341),
                   "Zn": (0.5450, 1.2232), "As": (0.5655, 1.7893), "Sb": (0.5942, 2.6017), "Bi": (0.5901, 2.4839),
                   "Hg": (0.6393, 3.9516), "Mo": (0.5983, 2.7203), "W": (0.5778, 2.1341), "F": (0.5696, 1.9037)},
        "critical": 2.58,
        # (stage, side) -> (ore, no ore)
        "tiles": {("split", "train"): (56, 286), ("split", "test"): (14, 72),
                  ("SMOTE + noise", "train"): (224, 300), ("SMOTE + noise", "test"): (56, 74)},
        "tiles_note": "The paper's 428 tiles are more than a 1560 x 1560 raster holds at 128/128 (144), and its test "
                      "side grows from 86 to 130 tiles (14 to 56 ore) after SMOTE, so its test set held synthetic "
                      "tiles; here the test side is never touched.",
    },
}
METRIC_NAMES = {"accuracy": "accuracy", "auc": "AUC", "recall": "recall (ore)", "f1": "F1 (macro)"}


def _fmt(value: float, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _usable(table: pd.DataFrame) -> pd.DataFrame:
    """The rows not flagged as collapsed (a constant map, or one score or class for every tile)."""
    return table[~table["collapsed"].astype(bool)]


def _overlapping(usable: pd.DataFrame, best: pd.Series) -> pd.DataFrame:
    """The other rows the held-out deposits do not tell apart from the best: the paired interval of their
    difference to it (over the same deposits) holds 0; in a table without one, their own intervals overlap."""
    others = usable["label"] != best["label"]
    if "paired_high" in usable:
        return usable[others & (usable["paired_low"] <= 0) & (usable["paired_high"] >= 0)]
    return usable[others & (usable["auc_high"] >= best["auc_low"])]


def _apart(usable: pd.DataFrame, close: pd.DataFrame) -> str:
    """The sentence on :func:`_overlapping`'s rows ``close`` (none: the best stands apart), without its full stop."""
    names = ", ".join(close["label"])
    if "paired_high" not in usable:
        return (f"The intervals of {names} overlap it: this run does not tell them apart" if len(close) else
                "No other model's interval reaches it")
    return (f"The held-out deposits do not tell {names} apart from it: the 95 % interval of the AUC difference, "
            "deposit by deposit, holds 0" if len(close) else
            "Its lead over every other model, deposit by deposit, has a 95 % interval above 0")


def _table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _screening(results: dict[str, Any], paper: dict[str, Any] | None) -> list[str]:
    table = results["screening"]
    rows = []
    for element, line in table.iterrows():
        row = {"element": element, "AUC": _fmt(line["auc"], 4), "S_AUC": _fmt(line["s_auc"], 4),
               "Z_AUC": _fmt(line["z_auc"], 3), "selected": "yes" if line["selected"] else ""}
        if paper:
            auc, z = paper["table2"].get(element, (np.nan, np.nan))
            row.update({"paper AUC": _fmt(auc, 4), "paper Z_AUC": _fmt(z, 4),
                        "paper selected": "yes" if z > paper["critical"] else ""})
        rows.append(row)
    text = [f"{table.attrs['n_pos']} ore-related and {table.attrs['n_neg']} background samples (radius "
            f"{table.attrs['radius']:.0f} m, {table.attrs['method']} scores); critical Z at alpha = "
            f"{table.attrs['alpha']}: {table.attrs['critical']:.2f}.", "", _table(pd.DataFrame(rows)), ""]
    below = table.index[table["auc"] < 0.5].tolist()
    if table.attrs["method"] == "svm" and below:
        text += [f"An AUC below 0.5 ({', '.join(below)}) is not depletion: the support-vector scores are "
                 "out-of-fold, and where an element carries no signal they scatter around 0.5, a little below "
                 "it more often than above (a model fitted without a sample leans away from it). Such an element "
                 "has nothing the model could learn; whether it is higher or lower near ore is its `direction` "
                 "in `screening.csv` (from the values themselves), and `[screening] method = \"value\"` scores the "
                 "concentrations as they are.", ""]
    if paper:
        ours = set(table.index[table["selected"]])
        theirs = {e for e, (_, z) in paper["table2"].items() if z > paper["critical"]}
        common = [e for e in table.index if e in paper["table2"]]
        text.append(f"Selected by both: {', '.join(sorted(ours & theirs)) or 'none'}; only here: "
                    f"{', '.join(sorted(ours - theirs)) or 'none'}; only in the paper: "
                    f"{', '.join(sorted(theirs - ours)) or 'none'}.")
        if len(common) > 2:
            from scipy.stats import spearmanr

            rho = spearmanr(table.loc[common, "z_auc"], [paper["table2"][e][1] for e in common]).statistic
            text.append(f"Rank correlation of Z_AUC with the paper's over {len(common)} elements: "
                        f"Spearman {rho:.2f}.")
        text.append("")
    return text


def _tiles(results: dict[str, Any], paper: dict[str, Any] | None) -> list[str]:
    rows = []
    for line in results["tiles"].itertuples(index=False):
        row = {"stage": line.stage, "side": line.side, "ore": line.ore, "no ore": line.no_ore,
               "of which synthetic": line.synthetic}
        if paper:
            ore, none = paper["tiles"].get((line.stage, line.side), (None, None))
            row.update({"paper ore": "–" if ore is None else ore, "paper no ore": "–" if none is None else none})
        rows.append(row)
    text = [f"Tiles of {results['tile_size']} x {results['tile_size']} px; counts of the first seed's split.", "",
            _table(pd.DataFrame(rows)), ""]
    if paper:
        text += [paper["tiles_note"], ""]
    return text


def _experiments(results: dict[str, Any]) -> list[str]:
    tables, runs = results["tables"], results["experiments"]
    seeds = sorted(int(s) for s in runs["seed"].unique())
    ore = runs.groupby("seed")["test_ore"].first()
    tiles = runs.groupby("seed")["test_tiles"].first()
    spread = (f"Mean ± standard deviation over {len(seeds)} seeds {seeds}" if len(seeds) > 1 else
              f"One seed ({seeds[0]}), so no spread over seeds")
    text = [f"{spread}, in %, on the spatially separated test "
            f"tiles ({', '.join(map(str, tiles.tolist()))} tiles, {', '.join(map(str, ore.tolist()))} of them ore, "
            "per seed); each model scored with the weights of its last epoch (the test tiles pick nothing). "
            "Accuracy and recall are at probability 0.5; F1 is the macro mean over the two classes; MFAF rows also "
            "give accuracy and F1 of the paper's hard decision, the vote of its branches. "
            f"With {int(ore.min())} ore test tiles, one tile moves recall by {100 / max(int(ore.min()), 1):.0f} "
            "points. *AUC 95 % CI* is a stratified bootstrap over the test tiles (2,000 resamples, the mean over "
            "seeds): the range the small test set alone allows; rows whose intervals overlap widely are not told "
            "apart by this run. A *collapsed* model gave every test tile the same score, or all tiles one class: "
            "it is never ranked first.", ""]
    for name, group in tables.groupby("table", sort=False):
        header = f"### {name}" if name else "### Models"
        rows = []
        for line in group.itertuples(index=False):
            row = {"method": line.label + (" (collapsed)" if line.collapsed else "")}
            for metric, title in METRIC_NAMES.items():
                mean, std = getattr(line, f"{metric}_mean"), getattr(line, f"{metric}_std")
                row[title] = _fmt(mean, 1) + ("" if np.isnan(std) else f" ± {std:.1f}")
                if metric == "auc":
                    row["AUC 95 % CI"] = f"{_fmt(line.auc_low, 0)}–{_fmt(line.auc_high, 0)}"
            row["vote accuracy / F1"] = (f"{_fmt(line.vote_accuracy_mean, 1)} / {_fmt(line.vote_f1_mean, 1)}"
                                         if np.isfinite(line.vote_accuracy_mean) else "–")
            for metric, title in METRIC_NAMES.items():
                row[f"paper {title.split()[0]}"] = _fmt(getattr(line, f"{metric}_paper"), 2)
            rows.append(row)
        frame = pd.DataFrame(rows)
        if (frame["vote accuracy / F1"] == "–").all():
            frame = frame.drop(columns="vote accuracy / F1")
        if group[[f"{m}_paper" for m in METRIC_NAMES]].isna().all().all():
            frame = frame.drop(columns=[c for c in frame.columns if c.startswith("paper ")])
        text += [header, "", _table(frame), "", _ordering(group), ""]
    return text


def _separable(group: pd.DataFrame) -> bool:
    """Whether the best usable row's AUC interval clears every other row's."""
    usable = _usable(group).sort_values("auc_mean", ascending=False)
    return len(usable) < 2 or _overlapping(usable, usable.iloc[0]).empty


def _heldout(results: dict[str, Any]) -> list[str]:
    """The headline: which model ranks deposits it never saw, with intervals."""
    table, split = results["heldout"], results["folds"]
    counts = split.counts()["deposits"].tolist()
    size = f"{split.block_size / 1000:.3g} km" + (f" ({split.block_why})" if split.block_why not in ("", "as given")
                                                 else "")
    text = [f"Spatial {split.k}-fold cross-validation: blocks of {size} dealt into {split.k} "
            f"folds ({', '.join(map(str, counts))} known deposits per fold"
            f"{f'; training kept {split.buffer:g} m away' if split.buffer else ''}). "
            + (f"Deposits within {split.link / 1000:.2f} km of one another ({split.why}) are dealt into one fold "
               "together with their blocks, so no held-out deposit has a training deposit nearer than that. "
               if split.link else f"No deposits are dealt together ({split.why}). ")
            + "For each fold every model is "
            "trained on the other folds only (no training pixel or window touches the held-out blocks), maps the "
            "whole area, and that fold's deposits are ranked against every valid cell. *AUC* is the mean over all "
            "held-out deposits (the deposit-weighted mean of the fold AUCs), *95 % CI* a bootstrap over deposits; "
            "*top p %* is the share of held-out deposits in the top p % of their fold map's area.", ""]
    hidden = "undiscovered_auc" in table
    rows = []
    for line in table.itertuples(index=False):
        row = {"model": line.label + (" (collapsed: constant map)" if line.collapsed else ""),
               "held-out AUC": f"{line.auc:.3f}", "95 % CI": f"{line.auc_low:.3f}–{line.auc_high:.3f}",
               "top 5 %": f"{100 * line.top_5:.0f} %", "top 10 %": f"{100 * line.top_10:.0f} %",
               "top 20 %": f"{100 * line.top_20:.0f} %"}
        if "isolated_auc" in table:
            row.update({"isolated AUC": _fmt(line.isolated_auc, 3),
                        "isolated 95 % CI": "–" if not line.isolated_deposits else
                        f"{line.isolated_low:.3f}–{line.isolated_high:.3f}"})
        if hidden:
            row.update({"undiscovered AUC": f"{line.undiscovered_auc:.3f}",
                        "undiscovered in top 10 %": f"{100 * line.undiscovered_top_10:.0f} %"})
        row["seconds"] = f"{line.seconds:.0f}"
        rows.append(row)
    text += [_table(pd.DataFrame(rows)), ""]
    usable = _usable(table)
    if len(usable):
        best = usable.iloc[0]
        overlapping = _overlapping(usable, best)
        text.append(f"**{best['label']}** ranks the held-out deposits best (AUC {best['auc']:.3f}, 95 % CI "
                    f"{best['auc_low']:.3f}–{best['auc_high']:.3f}). " +
                    _apart(usable, overlapping) + ".")
    if (joint := results["heldout_maps"].get("ensemble")) is not None:   # [heldout] ensemble: its members per fold
        text.append("*Ensemble*: the mean percentile rank of a network and a baseline, taken for each fold by a "
                    "cross-validation inside its training area (no deposit of the fold enters the choice): "
                    + "; ".join(f"fold {r.fold + 1} {r.members}" for r in joint.folds.itertuples()) + ".")
    if "isolated_auc" in table:
        first = table.iloc[0]
        text.append(f"*Isolated*: the {int(first['isolated_deposits'])} of {int(first['deposits'])} held-out deposits "
                    f"farther than {first['isolated_distance'] / 1000:g} km from every deposit their fold's model "
                    "trained on (`heldout_deposits.csv`: `nearest_training`). Deposits cluster; a held-out deposit "
                    "beside a training one is found by proximity as much as by its evidence, so the isolated AUC is "
                    "the harder test.")
    if hidden:
        text.append(f"The *undiscovered* columns rank the {int(table['undiscovered'].iloc[0])} deposits kept out of "
                    "every step (`[undiscovered]`) on the mean of each model's fold maps.")
    text += [""]
    return text


def _ordering(group: pd.DataFrame) -> str:
    usable = _usable(group)
    ours = usable.sort_values("auc_mean", ascending=False)["label"].tolist()
    text = "AUC ordering here: " + (" > ".join(ours) or "none (every model collapsed)")
    if len(ours) > 1 and not _separable(group):
        text = ("**This table cannot separate these models**: every interval overlaps the best one's. AUC ordering "
                "by the means alone: " + " > ".join(ours))
    if len(usable) < len(group):
        text += f"; collapsed, not ranked: {', '.join(group.loc[group['collapsed'].astype(bool), 'label'])}"
    with_paper = group.dropna(subset=["auc_paper"])
    if len(with_paper) > 1 and ours:
        theirs = with_paper.sort_values("auc_paper", ascending=False)["label"].tolist()
        best = "the same" if ours[0] == theirs[0] else "a different"
        text += f"; in the paper: {' > '.join(theirs)} ({best} best model)"
    return text + "."


def _experiment_figure(results: dict[str, Any], out: Path) -> str | None:
    """One panel per table, three to a row, labels readable; the legend below the panels, never over a bar."""
    import matplotlib.pyplot as plt

    tables = results["tables"]
    groups = list(tables.groupby("table", sort=False))
    if not groups:
        return None
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    widest = max(len(group) for _, group in groups)
    figure, axes = plt.subplots(rows, columns, figsize=(columns * max(3.2, 0.45 * widest + 1.2), 3.4 * rows + 0.6),
                                squeeze=False, layout="constrained")
    for ax, (name, group) in zip(axes.flat, groups, strict=False):
        positions = np.arange(len(group))
        spread = np.nan_to_num(np.vstack([group["auc_mean"] - group["auc_low"], group["auc_high"] - group["auc_mean"]]))
        colours = ["#b0b0b0" if c else "#4c72b0" for c in group["collapsed"].astype(bool)]
        ax.bar(positions, group["auc_mean"], yerr=np.clip(spread, 0, None), color=colours, capsize=3)
        if group["auc_paper"].notna().any():
            ax.plot(positions, group["auc_paper"], "o", color="#dd8452")
        ax.set_xticks(positions, group["label"], rotation=45, ha="right", fontsize=8)
        ax.set_title(name or "models", fontsize=9)
        ax.set_ylim(0, 100)
        ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylabel("test-tile AUC (%)", fontsize=8)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color="#4c72b0", label="here: mean AUC, bar = 95 % interval over the test tiles"),
               Patch(color="#b0b0b0", label="collapsed (one score or one class for every tile)"),
               Line2D([], [], marker="o", linestyle="", color="#dd8452", label="the paper"),
               Line2D([], [], linestyle=":", color="grey", label="chance (50 %)")]
    figure.legend(handles=handles, loc="outside lower center", ncols=2 if columns > 1 else 1, fontsize=8, frameon=False)
    with atomic_output(out / "experiments.png", overwrite=True) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
    return "experiments.png"


def _summary(config: Any, results: dict[str, Any]) -> list[str]:
    """What was run, which model won on unseen deposits and by how much, and what a reader may conclude."""
    survey, grid, evaluation = results["survey"], results["grid"], results["evaluation"]
    data = f"{survey['samples']:,} samples" if survey["samples"] else "rasters and vector layers alone (no survey)"
    text = [f"- **What was run**: `{config.source.name}` in {config.mode} mode on {data} and "
            + (f"{survey['deposits']} known deposits" if survey.get("deposits_used", survey["deposits"]) ==
               survey["deposits"] else f"{survey['deposits_used']} of the {survey['deposits']} known deposits given "
               f"(the other {survey['deposits'] - survey['deposits_used']} lie off the grid or on cells without "
               "data; named in the notes)")
            + (f" ({survey['undiscovered']} more kept out of every step as a test)" if survey["undiscovered"] else "")
            + f"; {len(results['bands'])} evidence layers on a {grid.shape[0]} × {grid.shape[1]} grid of "
            f"{grid.resolution[0]:g} m ({crs_label(grid.crs)})."]
    may, may_not = [], []
    if "heldout" in results:
        table = results["heldout"]
        usable = _usable(table)
        collapsed = table.loc[table["collapsed"].astype(bool), "label"].tolist()
        if len(usable):
            best = usable.iloc[0]
            line = (f"- **Best on deposits it never saw**: {best['label']}, held-out AUC {best['auc']:.3f} (95 % CI "
                    f"{best['auc_low']:.3f}–{best['auc_high']:.3f}), {100 * best['top_10']:.0f} % of the held-out "
                    f"deposits in its top 10 % of the area")
            if len(usable) > 1:
                second = usable.iloc[1]
                tied = _overlapping(usable, best)
                line += (f"; {best['auc'] - second['auc']:.3f} above the next, {second['label']} ({second['auc']:.3f}, "
                         f"{second['auc_low']:.3f}–{second['auc_high']:.3f})")
                if len(tied):
                    line += ". " + _apart(usable, tied)
                    may_not.append(f"that {best['label']} beats {', '.join(tied['label'])} ("
                                   + ("paired intervals holding 0)" if "paired_high" in usable else
                                      "overlapping intervals)"))
                else:
                    may.append(f"that {best['label']} ranks unseen deposits better than every other model here")
            text.append(line + ".")
            if best.get("isolated_deposits"):
                text.append(f"- **On isolated deposits** (farther than {best['isolated_distance'] / 1000:g} km from "
                            f"any deposit the fold models trained on: {int(best['isolated_deposits'])} of "
                            f"{int(best['deposits'])}): {best['label']} {best['isolated_auc']:.3f} (95 % CI "
                            f"{best['isolated_low']:.3f}–{best['isolated_high']:.3f}) against {best['auc']:.3f} on "
                            "all." + (" The clustered deposits flatter the overall AUC." if
                                      best["isolated_high"] < best["auc"] else ""))
                if best["isolated_high"] < best["auc"]:
                    may_not.append(f"that {best['label']} finds new, isolated deposits as well as its overall AUC "
                                   "says (deposits beside training deposits flatter it)")
        if collapsed:
            text.append(f"- **Collapsed** (a constant map; never called best): {', '.join(collapsed)}.")
    text.append(f"- **The map** ({results['map_model']}, {results['map_source']}; {results['map_why']}): its top "
                f"{100 * evaluation['coverage_area_fraction']:.0f} % of the area holds "
                f"{100 * evaluation['coverage']:.0f} % of the known deposits (a fit: they trained it)"
                + (f" and {100 * evaluation['undiscovered_coverage']:.0f} % of the {evaluation['undiscovered']} "
                   "undiscovered ones (a test)" if "undiscovered_coverage" in evaluation else "")
                + f"; {evaluation['targets']} target areas, ranked below.")
    tables = results.get("tables", pd.DataFrame())
    if len(tables):
        plain = [name or "models" for name, group in tables.groupby("table", sort=False)
                 if len(_usable(group)) > 1 and not _separable(group)]
        if plain:
            may_not.append(f"any ranking of models by the tile tables ({', '.join(plain)}): their intervals overlap")
    may.append("where to look first: the target areas, in rank order, with their uncertainty")
    if config["report"].get("synthetic"):
        may_not.append("anything about the real Qin-hang belt: the data is synthetic")
    text.append("- **You may conclude** " + "; ".join(may) + ".")
    if may_not:
        text.append("- **You may not conclude** " + "; ".join(may_not) + ".")
    return text + [""]


def _targets(results: dict[str, Any], shown: int = 30) -> list[str]:
    """The ranked target areas exactly as targets.gpkg holds them (the first ``shown``)."""
    areas = results["targets"]
    if not len(areas):
        return ["No cell reaches the target threshold.", ""]
    km2 = "area_km2" in areas
    rows = []
    for line in areas.head(shown).itertuples(index=False):
        row = {"rank": line.rank,
               "area (km²)" if km2 else "area": f"{line.area_km2:.2f}" if km2 else f"{line.area:.4g}",
               "centroid x": f"{line.centroid_x:.0f}", "centroid y": f"{line.centroid_y:.0f}",
               "mean probability": f"{line.mean_probability:.3f}", "max probability": f"{line.max_probability:.3f}"}
        if "n_deposits" in areas:
            row["known deposits inside"] = line.n_deposits
        if "mean_uncertainty" in areas:
            row["mean uncertainty"] = f"{line.mean_uncertainty:.3f}"
        if "models_agreeing" in areas:
            row["models agreeing"] = f"{line.models_agreeing} of {len(results['consensus']['models'])}"
        if "drivers" in areas:
            row["why (mean share over the area)"] = line.drivers
        rows.append(row)
    evaluation = results["evaluation"]
    agreeing = results.get("consensus") or {"models": []}
    text = [f"The connected areas of the top {100 * evaluation['coverage_area_fraction']:.0f} % of the map "
            f"(`targets.gpkg`, labelled by rank in `project.qgs`), ranked "
            + (f"first by how many of the {len(agreeing['models'])} top held-out models "
               f"({', '.join(agreeing['models'])}: the best and those whose interval reaches it) place the area in "
               f"their own top {100 * agreeing['area_fraction']:g} % (`consensus.tif`; *models agreeing*: at least "
               "half the area lies in that many models' top), so that targets several models share rank above those "
               "one model alone proposes, then " if agreeing["models"] else "")
            + "by their highest probability; centroids in "
            f"{crs_label(results['grid'].crs)}"
            + ("; *uncertainty* is the mean spread of the map there (`uncertainty.tif`): a high value says the "
               "models disagree." if "mean_uncertainty" in areas else ".")
            + " Areas without a known deposit are the new ground."
            + _why(results.get("contributions") or {}), "", _table(pd.DataFrame(rows)), ""]
    if len(areas) > shown:
        text += [f"{len(areas) - shown} smaller-ranked areas more are in `targets.gpkg`.", ""]
    return text


def _why(shares: dict[str, Any]) -> str:
    """What the targets' *why* column and ``contributions.tif`` hold."""
    if not shares:
        return ""
    complete = (f" (integrated gradients add up to the log-odds within {100 * shares['completeness']:.1f} %)"
                if "completeness" in shares else "")
    return (f" *Why* names the three bands with the largest mean share of the map model's score over the area, in "
            f"{shares['units']}: {shares['definition']}{complete}. `contributions.tif` holds every band's share at "
            "every cell (a layer group in `project.qgs`: red lifts the score, blue lowers it); a share says why "
            "*this model* scores a cell, not that the band causes ore.")


def _wofe(fit: dict[str, Any]) -> list[str]:
    """The chosen pattern of each band (the classical WofE table) and the conditional-independence test."""
    table = fit["table"]
    chosen = table[table["chosen"]]
    rows = [{"band": line.band, "pattern": line.pattern, "deposits": f"{line.deposits:.0f}",
             "area (km²)": f"{line.area:.1f}", "W+": f"{line.w_plus:.2f} ± {line.s_w_plus:.2f}",
             "W-": f"{line.w_minus:.2f} ± {line.s_w_minus:.2f}", "C": f"{line.contrast:.2f} ± {line.s_contrast:.2f}",
             "C / s(C)": f"{line.studentized:.1f}"} for line in chosen.itertuples(index=False)]
    left = sorted(set(table["band"]) - set(chosen["band"]))
    verdict = "holds" if fit["ratio"] >= 0.85 and fit["p"] >= 0.05 else "fails: the posterior overstates itself"
    return [f"Each band's binary pattern of largest studentized contrast, fitted to all {fit['deposits']} deposits on "
            "1 km² unit cells (Bonham-Carter 1994), as published WofE tables are: a fit, not a test; the "
            f"*{fit['label']}* row of the held-out table is its score on deposits it never saw. Every candidate "
            "pattern is in `wofe.csv`; the posterior and its standard deviation are `wofe_posterior.tif` and "
            "`wofe_posterior_std.tif`.", "",
            _table(pd.DataFrame(rows)) if rows else "No band reaches the studentized contrast asked for.", "",
            *([f"Bands that add nothing (below the studentized contrast asked for): {', '.join(left)}.", ""]
              if left else []),
            f"Conditional independence {verdict}: the model expects T = {fit['expected']:.1f} deposits where "
            f"D = {fit['deposits']} are known (D/T = {fit['ratio']:.2f}; below 0.85 is a problem, Bonham-Carter 1994), "
            f"Agterberg & Cheng's test z = {fit['z']:.2f}, p = {fit['p']:.3g}.", ""]


def _figures(results: dict[str, Any]) -> list[str]:
    evaluation = results["evaluation"]
    text = ["![map](map.png)", "",
            f"*The map* ({results['map_model']}): colours are fitted to the map's range; the lines on the colour bar "
            "mark the top 5, 10 and 20 % of the area. Look at the target outlines (numbered by rank) that hold no "
            "known deposit, and at whether the undiscovered deposits fall inside them.", ""]
    if "heldout" in results:
        text += ["![held-out prediction-rate curves](heldout_rate.png)", "",
                 "*Held-out prediction rate*: for each model, the share of deposits it never saw (y) found in the "
                 "top x of the area. The higher and further left, the better; the diagonal is a random map.", ""]
    text += ["![rate curves](rate_curves.png) ![P-A plot](prediction_area.png)", "",
             "*Left*: success rate (known deposits) and prediction rate (undiscovered ones) of the map. *Right*: the "
             f"prediction–area plot: where the two curves cross (probability {evaluation['pa_threshold']:.3f}), "
             f"{100 * evaluation['pa_rate']:.0f} % of the known deposits lie in the "
             f"{100 - 100 * evaluation['pa_rate']:.0f} % of the area above that probability; a higher crossing is a "
             "better map.", ""]
    return text


_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 7px;"
        "text-align:left}th{background:#f0f0f0}img{max-width:100%}blockquote{border-left:4px solid #c33;margin:1em 0;"
        "padding:0.2em 1em;background:#fff4f4}code{background:#f4f4f4;padding:0 3px}")


def write_html(markdown_text: str, out: Path, title: str) -> Path:
    """``report.html``: the same report, with every figure embedded, one file to e-mail."""
    import base64
    import html
    import re

    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"], output_format="html")

    root = Path(out).resolve()      # a folder, or the run's RunFolder

    def embed(match: re.Match) -> str:
        figure = (root / match.group(1)).resolve()
        if not figure.is_file() or root not in figure.parents:    # only the run's own figures
            return match.group(0)
        return f'src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode("ascii")}"'

    body = re.sub(r'src="([^":]+\.png)"', embed, body)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
    path = out / "report.html"
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def write(config: Any, results: dict[str, Any], out: Path) -> Path:
    """Write ``out/report.md`` and ``report.html`` (and ``experiments.png``) from what the run gathered.

    A targeting memo: the summary, the ranked target areas, the figures with what to look at, then the
    held-out table and the stage-by-stage detail with the paper's numbers beside ours.
    """
    import torch

    from prospect._version import __version__

    report = config["report"]
    paper = PAPERS.get(report.get("paper", ""))
    title = report.get("title", "Prospectivity study")
    trainer = results["experiments"]["epochs"].max() if "experiments" in results else None
    held_epochs = " or ".join(map(str, sorted({int(e) for e in results["heldout"].get(
        "epochs", pd.Series(dtype=float)).dropna()}))) if "heldout" in results else ""
    device = config["trainer"].get("device", "auto")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    text = [f"# {title}", ""]
    if report.get("synthetic"):
        text += ["> **Synthetic data.** Every number here describes the synthetic survey shipped in `data_samples/`, "
                 "made to have the shape of the paper's data (which is available only on request). Set beside the "
                 "paper's numbers, it can show whether the method behaves alike — which elements pass, which "
                 "models and settings rank higher — not reproduce its values.", ""]
    text += [f"Made {datetime.datetime.now().isoformat(timespec='minutes')} by prospect {__version__} "
             f"(torch {torch.__version__}, Python {platform.python_version()}) from `{config.source.name}` in "
             f"**{config.mode}** mode on {device} ({torch.get_num_threads()} CPU threads) in "
             f"{_minutes(sum(results['timings'].values()))}; seeds {config.seeds}"
             f"{f', {trainer} epochs on tiles' if trainer is not None else ''}"
             f"{f', {held_epochs} epochs per held-out fold network' if held_epochs else ''}. Open "
             "`project.qgs` in QGIS for every layer, styled.", ""]
    text += ["## Summary", "", *_summary(config, results)]
    text += ["## Target areas", "", *_targets(results)]
    text += ["## Figures", "", *_figures(results)]
    if "heldout" in results:
        text += ["## Which model finds deposits it never saw", "", *_heldout(results)]
    if results.get("wofe"):
        text += ["## Weights of evidence, fitted to every deposit", "", *_wofe(results["wofe"])]
    text += ["## How the run went", ""]
    if results["changes"]:
        text += [f"What this mode changed from `{config.source.name}`:", ""]
        text += [f"- `{change}`" for change in results["changes"]] + [""]
    text += ["| stage | seconds |", "|---|---|"]
    text += [f"| {stage} | {seconds:.1f} |" for stage, seconds in results["timings"].items()]
    text += [f"| total | {sum(results['timings'].values()):.1f} |", ""]
    if results.get("skipped"):
        text += ["Skipped: " + "; ".join(results["skipped"]) + ".", ""]
    if results.get("resumed"):
        text += [f"This run was resumed: {results['resumed']} model(s) were read back from an earlier run in this "
                 "folder, so the timings above leave their training out (`experiments.csv` has each model's seconds).",
                 ""]
    grid = results["grid"]
    if results.get("screening") is not None:
        text += ["## 1 Element screening (the paper's Table 2)", "", *_screening(results, paper)]
        text += ["![Z_AUC](screening_z.png)", ""]
        text += ["## 2 Evidence layers", "",
                 f"IDW of {', '.join(results['elements'])} on a {grid.shape[0]} x {grid.shape[1]} grid of "
                 f"{grid.resolution[0]:g} m ({crs_label(grid.crs)}), stacked with the other layers: "
                 f"{len(results['bands'])} bands ({', '.join(results['bands'])}) in `stack.tif`; one GeoTIFF per "
                 "element in `elements/`, categorical layers as integer codes with their legend in `layers/`.", ""]
    else:
        text += ["## 1-2 Evidence layers", "",
                 "No survey, so no element screening and no IDW: the evidence is the rasters and vector layers, on a "
                 f"{grid.shape[0]} x {grid.shape[1]} grid of {grid.resolution[0]:g} m ({crs_label(grid.crs)}): "
                 f"{len(results['bands'])} bands ({', '.join(results['bands'])}) in `stack.tif`, categorical layers "
                 "as integer codes with their legend in `layers/`.", ""]
    if "tiles" in results:
        text += ["## 3 Tiles (the paper's section 4.1 (3)-(4))", "", *_tiles(results, paper)]
        text += ["## 4 Models on test tiles (the paper's Tables 3-7)", "",
                 "These tables follow the paper's protocol (tiles labelled by any deposit inside, one spatial split) "
                 "to set our numbers beside its; they judge tiles, not maps. The held-out-deposit table above is the "
                 "one that says which map to trust.", "", *_experiments(results)]
        figure = _experiment_figure(results, out)
        if figure:
            text += [f"![test-tile AUC per table]({figure})", ""]
    else:
        text += ["## 3-4 Tile tables", "", "Not run: no `[experiments]` row trains on tiles (the paper's Tables 3-7 "
                 "judge tiles, not maps; the held-out table above judges the map).", ""]
    evaluation = results["evaluation"]
    text += ["## 5 Prospectivity map", "",
             f"{results['map_model']} ({results['map_source']}) over the whole stack: `prospectivity.tif`"
             + (f" and `uncertainty.tif` ({results['uncertainty']})" if results["uncertainty"] else "")
             + (", `contributions.tif` (every band's share of each cell's score)" if results.get("contributions")
                else "")
             + ", each styled for QGIS by a `.qml` of the same name, and `targets.gpkg`.", "",
             "| measure | value |", "|---|---|",
             f"| AUC of the known deposits (success rate; the map AUC of deposit cells against all others is the "
             f"same number for point deposits) | {evaluation['success_rate_auc']:.3f} |",
             f"| known deposits in the top {100 * evaluation['coverage_area_fraction']:.0f} % of the area | "
             f"{100 * evaluation['coverage']:.0f} % of {evaluation['used']} |"]
    if "undiscovered_coverage" in evaluation:
        text += [f"| prediction-rate AUC (deposits kept out of training) | "
                 f"{evaluation['undiscovered_prediction_rate_auc']:.3f} |",
                 f"| of those in the top {100 * evaluation['coverage_area_fraction']:.0f} % of the area | "
                 f"{100 * evaluation['undiscovered_coverage']:.0f} % of {evaluation['undiscovered']} |"]
    text += [f"| P-A crossing: probability; known deposits above it; area above it | {evaluation['pa_threshold']:.3f}; "
             f"{100 * evaluation['pa_rate']:.0f} %; {100 - 100 * evaluation['pa_rate']:.0f} % |",
             f"| target areas | {evaluation['targets']} |", "",
             "The known deposits also labelled the training samples, so their success rate is a fit, not a test; "
             "the held-out table above is the test.", ""]
    if results["notes"]:
        text += ["## Notes", ""] + [f"- {note}" for note in results["notes"]] + [""]
    path = out / "report.md"
    markdown_text = "\n".join(text)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(markdown_text, encoding="utf-8")
    write_html(markdown_text, out, title)
    return path


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
