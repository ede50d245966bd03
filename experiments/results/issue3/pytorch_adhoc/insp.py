from common import *
mails = load_mails(); tr, va, te = split(mails); random.Random(1).shuffle(va); va = va[:128]
tok = BertTokenizerFast.from_pretrained(MODEL)
model, masked = build_model()
ck = torch.load("/tmp/probe/ck60.pt"); model.load_state_dict(ck["model"]); model.eval()
def stats(tag):
    enc = tok([m["text"] for m in va], truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        o = model(**enc, output_hidden_states=True)
        for l, h in enumerate(o.hidden_states):
            cls = h[:, 0]; tokall = h[enc["attention_mask"].bool()]
            top = cls.abs().mean(0).topk(3)
            print(f"{tag} h{l}: CLS |x| per-dim top {[round(v,1) for v in top.values.tolist()]} dims {top.indices.tolist()} ; CLS sd-across-inputs {cls.std(0).mean():.3f}; tokens max|x| {tokall.abs().max():.1f}")
        pre = model.bert.pooler.dense(o.hidden_states[-1][:, 0])
        print(f"{tag} pooler pre-tanh |z| mean {pre.abs().mean():.2f}, sd-across-inputs {pre.std(0).mean():.3f}; frac |z|>3: {(pre.abs()>3).float().mean():.3f}")
stats("dense")
for rem in (0.05, 0.10):
    for m in masked: m.fixed = TopK.apply(m.mask_scores.detach(), 1 - rem)
    stats(f"mv{rem}")
