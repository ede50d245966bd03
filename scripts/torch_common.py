"""Shared pieces of the PyTorch peers (movement_probe.py, movement_run_torch.py,
movement_stepwise_torch.py): the cached assets the trainer fetched, the SpamAssassin text as
crates/datasets/src/spam_assassin.rs builds it, a straight-through top-k, wrapping BERT's six
encoder Linears per layer, and the trainer's optimizer with the mask scores."""
import glob, json, os, re, tarfile
import torch

CACHE = os.environ.get("PRUNEKIT_CACHE", os.path.expanduser("~/.cache/prunekit"))
MODEL = os.path.join(CACHE, "assets", "all-minilm-l6-v2")


def subject_and_body(raw):
    """Subject + body, other headers dropped, tags removed (as crates/datasets/src/spam_assassin.rs)."""
    raw = raw.replace("\r\n", "\n")
    headers, _, body = raw.partition("\n\n")
    subject, in_subject = "", False
    for line in headers.split("\n"):
        if in_subject and line[:1] in (" ", "\t"):
            subject += " " + line.strip()
            continue
        in_subject = line[:8].lower() == "subject:"
        if in_subject:
            subject = line[8:].strip()
    return " ".join((subject + "\n" + re.sub(r"<[^>]*>", " ", body)).split())


def mails():
    """(text, label) of every mail of the cached npm tarball, sorted; label 1 = spam."""
    tgz = glob.glob(os.path.join(CACHE, "downloads", "spam-assassin", "*.tgz"))[0]
    out = []
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            rest = m.name[len("package/data/"):] if m.name.startswith("package/data/") else ""
            if rest.count("/") == 1 and rest.endswith(".json"):
                d = json.load(t.extractfile(m))
                out.append((subject_and_body(d["text"]), int(d["group"].startswith("spam"))))
    return sorted(out)


class TopK(torch.autograd.Function):
    """Keeps the top `keep` fraction of the scores (at least one); the gradient passes straight through."""
    @staticmethod
    def forward(ctx, s, keep):
        m = torch.zeros_like(s)
        m.view(-1)[s.flatten().topk(max(1, int(round(keep * s.numel())))).indices] = 1
        return m

    @staticmethod
    def backward(ctx, g):
        return g, None


def wrap_encoder_linears(model, wrap):
    """Replaces Q, K, V, attention output, intermediate and output of every layer by wrap(linear)."""
    out = []
    for layer in model.bert.encoder.layer:
        for parent, name in [(layer.attention.self, "query"), (layer.attention.self, "key"), (layer.attention.self, "value"),
                             (layer.attention.output, "dense"), (layer.intermediate, "dense"), (layer.output, "dense")]:
            out.append(wrap(getattr(parent, name)))
            setattr(parent, name, out[-1])
    return out


def adamw_with_scores(model, scores, lr, scores_lr, warmup, total):
    """The trainer's optimizer: AdamW (eps 1e-8), weight decay 0.01 except biases and LayerNorm,
    the mask scores in their own group (no decay); linear warm-up over `warmup` steps, then
    linear decay to 0 at `total`, for every group. Returns (optimizer, scheduler)."""
    nodecay = [p for n, p in model.named_parameters() if "mask_scores" not in n and ("bias" in n or "LayerNorm" in n)]
    decay = [p for n, p in model.named_parameters() if "mask_scores" not in n and not ("bias" in n or "LayerNorm" in n)]
    opt = torch.optim.AdamW([{"params": scores, "lr": scores_lr, "weight_decay": 0.0},
                             {"params": decay, "lr": lr, "weight_decay": 0.01},
                             {"params": nodecay, "lr": lr, "weight_decay": 0.0}], eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, 1 - (s - warmup) / max(1, total - warmup)))
    return opt, sched, decay, nodecay
