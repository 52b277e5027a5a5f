"""world-5l-sae-topk: the TopK twin of world-5l-sae, for chapter 05's comparison at matched L0.

Same site, text, size and schedule as ``world_sae``; it keeps the k largest latents of each token
instead of paying an L1 penalty, with k close to the L0 of the L1 SAE.
"""

from reference_impl.zoo import world_sae
from reference_impl.zoo.bars import Bar
from reference_impl.zoo.world_sae import BARS as L1_BARS
from reference_impl.zoo.world_sae import BASE_MODEL  # noqa: F401 (the model it reads)

NAME = "world-5l-sae-topk"
RECIPE = {**world_sae.RECIPE, "k": 24, "l1_coefficient": 0.0}
DESCRIPTION = (f"The TopK twin of world-5l-sae: {RECIPE['d_sae']} latents at the same site, of "
               f"which each token keeps its {RECIPE['k']} largest (chapter 05).")
BARS = tuple(bar for bar in L1_BARS if bar.metric != "l0") + (
    Bar("l0", "<=", RECIPE["k"], "mean number of active latents per token"),)


def train(seed: int = 0, progress: bool = True):
    return world_sae.train(seed, progress, recipe=RECIPE)


def load():
    return world_sae.load(NAME)


measure = world_sae.measure
