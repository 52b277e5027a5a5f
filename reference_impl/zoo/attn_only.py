"""``attn-only-2l``: a two-layer attention-only GPT-2 with an induction circuit, for chapter 03.

Architecture: GPT-2 blocks whose MLP is removed (``"attention_only": true`` in ``config.json``;
the unused ``ln_2`` stays, LayerNorms ``ln_1`` and ``ln_f`` are active), 2 layers, 4 heads,
d_model 64, 64 positions, untied embeddings, no dropout. Vocabulary: the world tokenizer's 290
words, so sequences of random tokens read as random words.

Training data mixes three synthetic languages in every batch, each loss averaged on its own:

- "copy" (70 %): random words in which short runs (2-3 words) of earlier text reappear after a
  gap of 1-8 words. Only the copied words after the first of each copy carry loss, and the word
  before a copy differs from the word before its source, so the one reliable cue is "this word
  occurred before: predict what followed it" -- induction.
- "skip" (10 %): each word depends on the word three back through a fixed sparse random table.
  It gives layer 0 a reason to look at earlier positions before induction can pay off; three
  back rather than two, so that the head it needs is not a second previous-token head.
- "topic" (20 %): the first word names a topic; later words are drawn from that topic's 8 words.
  It gives the other heads a different job, so that not every head becomes part of the circuit.

On pure repeated random tokens every head ends up doing the same thing; on the mix, one layer-0
head becomes a previous-token head, the layer-1 heads become induction heads and the other
layer-0 heads do other work. The strong weight decay (0.5) prunes what the induction heads' keys
read down to the previous-token head's output, which makes their K-composition clear. The heads form abruptly (a phase change) a few hundred steps in; the training log
records head scores every 50 steps so chapter 03 can show it without retraining.
"""

import random
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import GPT2Config

from reference_impl.world import BOS_ID, build_tokenizer, repeated_tokens
from reference_impl.world.tokenizer import SPECIAL_TOKENS

from . import build_model
from .bars import Bar
from .induction import copy_losses, head_scores, mean_ablation

NAME = "attn-only-2l"
DESCRIPTION = ("Two-layer attention-only GPT-2 (4 heads, d_model 64) trained on random-word text "
               "with repeated runs, plus two distractor languages; contains previous-token and "
               "induction heads.")

CONTEXT = 64
MIX = {"copy": 0.7, "skip": 0.1, "topic": 0.2}
RECIPE = dict(steps=3000, batch=64, lr=1e-3, warmup=100, betas=(0.9, 0.98), weight_decay=0.5,
              log_every=50, mix=MIX, copy_run=(2, 3), copy_gap=(1, 8), skip_distance=3,
              skip_successors=4,
              topic_words=8)
EVAL_SEQUENCES, EVAL_LENGTH, EVAL_SEED = 100, 25, 12345
CIRCUIT_THRESHOLD = 0.3  # a head with score >= this belongs to the circuit; < 0.2 to neither

BARS = (
    Bar("best_previous_token_score", ">=", 0.5, "some layer-0 head attends to the previous token"),
    Bar("best_induction_score", ">=", 0.6,
        "some layer-1 head attends to the token after the current token's first occurrence"),
    Bar("copy_loss_ratio", "<=", 0.1, "second-copy loss is at most 10 % of first-copy loss"),
    Bar("induction_ablation_ratio", ">=", 3,
        "mean-ablating the induction heads multiplies second-copy loss"),
    Bar("neither_heads", ">=", 1, "some head has both scores below 0.2"),
    Bar("worst_neither_ablation_ratio", "<", 1.5,
        "mean-ablating any such head barely changes second-copy loss"),
)


def config(tokenizer):
    return GPT2Config(vocab_size=len(tokenizer), n_positions=CONTEXT, n_embd=64, n_layer=2,
                      n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      tie_word_embeddings=False, bos_token_id=BOS_ID, eos_token_id=BOS_ID,
                      attention_only=True)


class Languages:
    """Batches of the three training languages over the ordinary tokens [first, vocab)."""

    def __init__(self, vocab_size, seed):
        self.first, self.vocab = len(SPECIAL_TOKENS), vocab_size
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        words = self.vocab - self.first
        # Fixed per seed: the skip language's transition table and the topics' word sets.
        successors = torch.stack([torch.randperm(words, generator=self.gen)[:4]
                                  for _ in range(words)])
        weights = -torch.log(torch.rand(words, 4, generator=self.gen))
        self.transition = torch.zeros(words, words).scatter_(
            1, successors, weights / weights.sum(1, keepdim=True))
        self.topics = torch.stack([torch.randperm(words, generator=self.gen)[:8]
                                   for _ in range(words)])

    def _random(self, batch):
        tokens = torch.randint(0, self.vocab - self.first, (batch, CONTEXT), generator=self.gen)
        return tokens

    def copy(self, batch):
        tokens, mask = self._random(batch), torch.zeros(batch, CONTEXT)
        for b in range(batch):
            fresh = [True] * CONTEXT  # positions whose word has not been copied or been a copy
            pos = 1 + self.rng.randint(2, 8)
            while pos < CONTEXT - 1:
                length = min(self.rng.randint(2, 3), CONTEXT - pos)
                for _ in range(8):  # try a few sources: an earlier run of fresh words
                    src = self.rng.randint(1, max(1, pos - length))
                    if src + length <= pos and all(fresh[src:src + length]) \
                            and (src == 1 or tokens[b, src - 1] != tokens[b, pos - 1]):
                        tokens[b, pos:pos + length] = tokens[b, src:src + length]
                        mask[b, pos + 1:pos + length] = 1  # the first copied word is a surprise
                        fresh[pos:pos + length] = [False] * length
                        pos += length
                        break
                pos += self.rng.randint(1, 8)
        return tokens, mask

    def skip(self, batch):
        tokens = self._random(batch)
        back = RECIPE["skip_distance"]
        for t in range(1 + back, CONTEXT):
            tokens[:, t] = torch.multinomial(self.transition[tokens[:, t - back]], 1,
                                             generator=self.gen).squeeze(1)
        mask = torch.zeros(batch, CONTEXT)
        mask[:, 1 + back:] = 1
        return tokens, mask

    def topic(self, batch):
        tokens = self._random(batch)
        choice = torch.randint(0, 8, (batch, CONTEXT - 2), generator=self.gen)
        tokens[:, 2:] = torch.gather(self.topics[tokens[:, 1]], 1, choice)
        mask = torch.zeros(batch, CONTEXT)
        mask[:, 2:] = 1
        return tokens, mask

    def batch(self, size):
        """Tokens (BOS first) and per-token loss weights: each language's mean, times its share."""
        parts = [getattr(self, name)(round(share * size)) for name, share in MIX.items()]
        tokens = torch.cat([t for t, _ in parts]) + self.first
        tokens[:, 0] = BOS_ID
        weights = torch.cat([m / m.sum() * share for (_, m), share in zip(parts, MIX.values())])
        return tokens, weights


def eval_tokens(tokenizer, seed=EVAL_SEED):
    """The fixed evaluation batch: 100 sequences [BOS] + r + r with r of 25 random words."""
    return repeated_tokens(len(tokenizer), EVAL_LENGTH, EVAL_SEQUENCES,
                           generator=torch.Generator().manual_seed(seed))


def train(seed=0, progress=True):
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = build_model(config(tokenizer))
    data = Languages(len(tokenizer), seed=1000 + seed)
    probe = eval_tokens(tokenizer)[:32]
    optimizer = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], betas=RECIPE["betas"],
                                  weight_decay=RECIPE["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / RECIPE["warmup"]))
    log = dict(recipe=RECIPE, seed=seed, steps=[], loss=[], previous_token_scores=[],
               induction_scores=[], first_copy_loss=[], second_copy_loss=[])
    recent = []  # training losses since the last log entry
    start = time.perf_counter()
    for step in tqdm(range(RECIPE["steps"] + 1), desc=NAME, disable=not progress):
        if step % RECIPE["log_every"] == 0:
            model.eval()
            previous, induction = head_scores(model, probe)
            first, second = copy_losses(model, probe)
            model.train()
            log["steps"].append(step)
            log["loss"].append(sum(recent) / len(recent) if recent else None)
            recent = []
            log["previous_token_scores"].append(previous.tolist())
            log["induction_scores"].append(induction.tolist())
            log["first_copy_loss"].append(first)
            log["second_copy_loss"].append(second)
        if step == RECIPE["steps"]:
            break
        tokens, weights = data.batch(RECIPE["batch"])
        logits = model(tokens).logits
        losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
        loss = (losses * weights[:, 1:]).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        recent.append(loss.item())
    log["train_seconds"] = round(time.perf_counter() - start, 1)
    return model.eval(), tokenizer, log


def circuit_heads(previous, induction):
    """(previous-token heads, induction heads, heads doing neither) from the two score grids."""
    grid = [(layer, head) for layer in range(previous.shape[0]) for head in range(previous.shape[1])]
    prev_heads = [(l, h) for l, h in grid if l == 0 and previous[l, h] >= CIRCUIT_THRESHOLD]
    ind_heads = [(l, h) for l, h in grid if l > 0 and induction[l, h] >= CIRCUIT_THRESHOLD]
    neither = [(l, h) for l, h in grid if previous[l, h] < 0.2 and induction[l, h] < 0.2]
    return prev_heads, ind_heads, neither


@torch.no_grad()
def measure(model, tokenizer):
    tokens = eval_tokens(tokenizer)
    previous, induction = head_scores(model, tokens)
    first, second = copy_losses(model, tokens)
    prev_heads, ind_heads, neither = circuit_heads(previous, induction)

    def ablated(heads):
        if not heads:
            return float("nan")
        return copy_losses(model, tokens, mean_ablation(model, tokens, heads))[1] / second

    neither_ratios = [ablated([head]) for head in neither]
    return {
        "best_previous_token_score": previous[0].max().item(),
        "best_induction_score": induction[1:].max().item(),
        "first_copy_loss": first,
        "second_copy_loss": second,
        "copy_loss_ratio": second / first,
        "induction_ablation_ratio": ablated(ind_heads),
        "previous_token_ablation_ratio": ablated(prev_heads),
        "neither_heads": float(len(neither)),
        "worst_neither_ablation_ratio": max(neither_ratios, default=float("nan")),
    }
