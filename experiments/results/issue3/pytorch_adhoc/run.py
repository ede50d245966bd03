import argparse, copy
from common import *
p = argparse.ArgumentParser()
p.add_argument("--phase", default="dense")
p.add_argument("--dense", type=int, default=60)
p.add_argument("--ramp", type=int, default=40)
p.add_argument("--final", type=int, default=25)
p.add_argument("--vf", type=float, default=0.9)
p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--slr", type=float, default=1e-2)
p.add_argument("--bs", type=int, default=16)
p.add_argument("--ntrain", type=int, default=2000)
p.add_argument("--mode", default="movement")
p.add_argument("--ck", default="/tmp/probe/ck60.pt")
p.add_argument("--seed", type=int, default=42)
p.add_argument("--log_every", type=int, default=5)
p.add_argument("--balanced", type=int, default=0)
p.add_argument("--warm", type=int, default=10)
p.add_argument("--kd", type=float, default=0.0)
p.add_argument("--save", default="")
p.add_argument("--stop", type=int, default=0)
p.add_argument("--score_opt", default="adam")
p.add_argument("--diag", type=int, default=0)
p.add_argument("--score_start", type=int, default=0)
a = p.parse_args()
torch.manual_seed(a.seed)
mails = load_mails(); tr, va, te = split(mails)
tr = tr[:a.ntrain]; random.Random(1).shuffle(va); va = va[:300]
tok = BertTokenizerFast.from_pretrained(MODEL)
model, masked = build_model()
total = a.dense + a.ramp + a.final
def optim():
    sc = [p for n, p in model.named_parameters() if "mask_scores" in n]
    nd = [p for n, p in model.named_parameters() if "mask_scores" not in n and ("bias" in n or "LayerNorm" in n)]
    wd = [p for n, p in model.named_parameters() if "mask_scores" not in n and not ("bias" in n or "LayerNorm" in n)]
    groups = [{"params": sc, "lr": a.slr, "weight_decay": 0.0}] if a.score_opt == "adam" else []
    o = torch.optim.AdamW(groups + [{"params": wd, "lr": a.lr, "weight_decay": 0.01}, {"params": nd, "lr": a.lr, "weight_decay": 0.0}], eps=1e-8)
    return o
o = optim()
warm = a.warm
sched = torch.optim.lr_scheduler.LambdaLR(o, lambda s: (s + 1) / warm if s < warm else max(0.0, 1 - (s - warm) / max(1, total - warm)))
rng = random.Random(a.seed)
def stream():
    if a.balanced:
        ham = [m for m in tr if m["label"] == 0]; spam = [m for m in tr if m["label"] == 1]
        while True:
            b = rng.sample(ham, a.bs // 2) + rng.sample(spam, a.bs // 2)
            yield from batches(tok, b, a.bs, 64, None)
    while True:
        yield from batches(tok, tr, a.bs, 64, rng)
it = stream()
step = 0
if a.phase in ("continue", "damage"):
    ck = torch.load(a.ck)
    model.load_state_dict(ck["model"]); o.load_state_dict(ck["optim"]); sched.load_state_dict(ck["sched"]); rng.setstate(ck["rng"]); step = ck["step"]
    it = stream()
if a.phase == "damage":
    base = copy.deepcopy(model.state_dict())
    print("baseline val", evaluate(model, tok, va))
    for crit in ["movement", "random", "magnitude"]:
        for rem in [0.01, 0.05, 0.10]:
            g = torch.Generator().manual_seed(0)
            for m in masked:
                s = m.mask_scores.detach()
                if crit == "movement": key = s
                elif crit == "anti_movement": key = -s
                elif crit == "random": key = torch.rand(s.shape, generator=g)
                elif crit == "magnitude": key = m.lin.weight.detach().abs()
                elif crit == "small_abs_score": key = s.abs()
                m.fixed = TopK.apply(key, 1 - rem)
            acc, loss, auc, md, sd, pstd = evaluate2(model, tok, va)
            print(f"{crit:16s} removed {rem:.2f}: val acc {acc:.4f} loss {loss:.4f} auroc {auc:.4f} logit-diff mean {md:+.2f} sd {sd:.2f} pooler-sd {pstd:.3f}", flush=True)
    for m in masked: m.fixed = None
    sys.exit()
for m in masked: m.mode = a.mode
t0 = time.time(); run_loss = 0.0; n = 0; teacher = None
end = a.dense if a.phase == "dense" else total
while step < end:
    keep = cubic(step, a.dense, a.final, total, 1.0, a.vf)
    for m in masked: m.keep = keep
    enc, y = next(it)
    if a.kd > 0 and step >= a.dense and teacher is None:
        teacher = copy.deepcopy(model).eval()
        for m in teacher.modules():
            if isinstance(m, Masked): m.keep = 1.0; m.mode = "movement"; m.fixed = torch.ones_like(m.lin.weight)
    out = model(**enc).logits
    loss = F.cross_entropy(out, y)
    if teacher is not None:
        with torch.no_grad(): tl = teacher(**enc).logits
        T = 2.0
        kl = F.kl_div(F.log_softmax(out / T, -1), F.softmax(tl / T, -1), reduction="batchmean") * T * T
        loss = a.kd * kl + (1 - a.kd) * loss
    o.zero_grad(); loss.backward()
    if a.score_opt == "sgd":
        with torch.no_grad():
            for m in masked:
                m.mask_scores -= m.mask_scores.grad; m.mask_scores.grad = None
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    if a.diag and step >= a.diag:
        with torch.no_grad():
            prev = [TopK.apply(m.mask_scores, keep) for m in masked]
    
    if step < a.score_start:
        for m in masked: m.mask_scores.grad = None
    o.step(); sched.step(); step += 1
    run_loss += loss.item(); n += 1
    if a.diag and step > a.diag:
        with torch.no_grad():
            flips = sum(int((TopK.apply(m.mask_scores, keep) != p).sum()) for m, p in zip(masked, prev))
            o2 = model(**enc, output_hidden_states=True)
            hmax = [round(h.abs().max().item(), 1) for h in o2.hidden_states]
        print(f"  s{step} loss {loss.item():.3f} gradnorm {gn:.2f} flips {flips} hidden max {hmax}", flush=True)
    if a.stop and step >= a.stop: break
    if step % a.log_every == 0:
        print(f"step {step} keep {keep:.4f} loss {run_loss/n:.4f} {time.time()-t0:.0f}s", flush=True); run_loss = 0; n = 0
    if step % 25 == 0 or step == end:
        print("  val acc %.3f loss %.3f auroc %.3f logit-diff %+.2f sd %.2f pooler-sd %.3f" % evaluate2(model, tok, va), flush=True)
if a.phase == "dense":
    torch.save({"model": model.state_dict(), "optim": o.state_dict(), "sched": sched.state_dict(), "rng": rng.getstate(), "step": step}, a.ck)
print("test", evaluate(model, tok, te))
if a.save: torch.save(model.state_dict(), a.save)
