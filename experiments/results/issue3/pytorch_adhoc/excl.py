from common import *
mails = load_mails(); tr, va, te = split(mails); random.Random(1).shuffle(va); va = va[:300]
tok = BertTokenizerFast.from_pretrained(MODEL)
model, masked = build_model()
ck = torch.load(sys.argv[1]); model.load_state_dict(ck["model"])
print("baseline", evaluate2(model, tok, va))
names = ["q","k","v","ao","fi","fo"]
for protect in [None, 99]:
    for rem in (0.05, 0.10):
        for i, m in enumerate(masked):
            s = m.mask_scores.detach().clone()
            if protect is not None:
                t = names[i % 6]
                if t in ("q","k","v","fi"): s[:, protect] = 1e9   # weights reading the dim
                if t in ("ao","fo"): s[protect, :] = 1e9          # weights writing the dim
            m.fixed = TopK.apply(s, 1 - rem)
        print(f"protect {protect} removed {rem}:", "acc %.3f loss %.3f auroc %.3f logit-diff %+.2f sd %.2f pooled-sd %.3f" % evaluate2(model, tok, va), flush=True)
