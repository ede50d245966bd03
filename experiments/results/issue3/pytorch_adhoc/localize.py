from common import *
import copy
mails = load_mails(); tr, va, te = split(mails); random.Random(1).shuffle(va); va = va[:300]
tok = BertTokenizerFast.from_pretrained(MODEL)
model, masked = build_model()
ck = torch.load(sys.argv[1] if len(sys.argv) > 1 else "/tmp/probe/ck60.pt"); model.load_state_dict(ck["model"])
names = ["q","k","v","ao","fi","fo"]
def run(sel, rem=0.10, label=""):
    for i, m in enumerate(masked):
        m.fixed = TopK.apply(m.mask_scores.detach(), 1 - rem) if sel(i//6, names[i%6]) else None
    acc, loss, auc, md, sd, pstd = evaluate2(model, tok, va)
    print(f"{label:20s} acc {acc:.3f} auroc {auc:.3f} logit-diff {md:+.2f}±{sd:.2f} pooler-sd {pstd:.3f}", flush=True)
print('baseline', evaluate2(model, tok, va))
for r in (0.01, 0.05, 0.10): run(lambda L, t: True, rem=r, label=f'all {r}')
for l in range(6): run(lambda L, t: L == l, label=f"layer {l}")
for t in names: run(lambda L, T: T == t, label=f"type {t}")
# score stats: concentration of lowest-10% scores on input columns / output rows
for i, m in enumerate(masked):
    s = m.mask_scores.detach(); k = int(0.1*s.numel())
    thr = s.flatten().kthvalue(k).values
    low = (s <= thr).float()
    col = low.mean(0); row = low.mean(1)
    if i//6 in (0,5):
        print(f"L{i//6} {names[i%6]}: score range [{s.min():.3f},{s.max():.3f}] std {s.std():.3f}; lowest-10% worst cols {col.topk(3).values.tolist()} idx {col.topk(3).indices.tolist()}; worst rows {row.topk(3).values.tolist()}")
