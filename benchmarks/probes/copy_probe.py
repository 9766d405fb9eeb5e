"""Can a from-scratch 2-layer, 128-wide Llama-style decoder learn the look-up that grounded citations need?

An independent PyTorch-Python probe (docs/training.md, "Can this model learn the look-up?"): synthetic documents
shaped like r2rec's compact-layout task conversations (history, 16 chains "k. <cand><user><hist>U", 20
candidates, then "Candidate X." and up to 3 paths "X<user><hist>U." copied from the prompt lines ending at X),
every entity drawn uniformly, so only looking up predicts the copied tokens. Optionally a share of "random
sequence, then its repeat" documents (the classic induction-head curriculum). Prints the training loss and the
greedy accuracy at the copied positions every 100 steps (and on task documents alone every 200).

usage: [SMEAR=1] [PREV=1] [LOSSMASK=1] NI=1682 NU=943 /usr/bin/python3 copy_probe.py THREADS WIDTH STEPS LR REPEAT_SHARE
"""
import torch, math, random, sys, time
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv)>1 else 2)
torch.manual_seed(0); random.seed(0)
import os
NI, NU = int(os.environ.get("NI",1682)), int(os.environ.get("NU",943))
F = {n: NI+NU+k for k,n in enumerate("SYS HIST CHAINS NL U DOT CANDS THINK CAND PERIOD ENDTHINK ANS".split()+[f"N{k}" for k in range(1,17)])}
V = NI+NU+len(F)
def item(i): return i
def user(u): return NI+u
def doc():
    d=[F["SYS"]]*8+[F["HIST"]]
    items=random.sample(range(NI),30); hist, cands = items[:10], items[10:]
    d+= hist+[F["NL"],F["CHAINS"],F["NL"]]
    chains=[]
    for k in range(16):
        c=(random.choice(cands), user(random.randrange(NU)), random.choice(hist))
        chains.append(c); d+=[F[f"N{k+1}"],F["DOT"],c[0],c[1],c[2],F["U"],F["NL"]]
    d+=[F["CANDS"]]+cands+[F["NL"],F["THINK"],F["CAND"]]
    x=random.choice(chains)[0]; mask=[0]*len(d)
    d.append(x); mask.append(1); d+=[F["PERIOD"],F["NL"]]; mask+=[0,0]
    for c in [c for c in chains if c[0]==x][:3]:
        d+=[c[0],c[1],c[2],F["U"],F["PERIOD"],F["NL"]]; mask+=[0,1,1,0,0,0]
    d+=[F["ENDTHINK"],F["ANS"],x]; mask+=[0,0,1]
    return d,mask
LOSSMASK=int(os.environ.get('LOSSMASK','0'))  # 1: the loss on the copied positions only
SMEAR=int(os.environ.get('SMEAR','0'))
PREV=int(os.environ.get('PREV','0'))  # 1: the previous token's embedding, projected, added to each input
REPEAT=float(sys.argv[5]) if len(sys.argv)>5 else 0.0
def repeat_doc():
    # classic induction curriculum: random entity tokens, then the same tokens again (every repeat is a copy)
    n=random.randint(10,40); seq=[random.randrange(NI+NU) for _ in range(n)]
    d=[F["SYS"]]+seq+[F["NL"]]+seq+[F["NL"]]; mask=[0]*(n+2)+[0]+[1]*(n-1)+[0]
    return d,mask
def batch(B,T):
    X=torch.zeros(B,T,dtype=torch.long); M=torch.zeros(B,T)
    for b in range(B):
        ids=[];m=[]
        while len(ids)<T+1:
            d,mk=repeat_doc() if random.random()<REPEAT else doc(); ids+=d; m+=mk
        X[b]=torch.tensor(ids[:T]); M[b]=torch.tensor(m[1:T+1],dtype=torch.float)
        Y=ids[1:T+1]
        if b==0: Ys=[]
        Ys.append(Y)
    return X, torch.tensor(Ys), M
D,H,L,FF=int(sys.argv[2]) if len(sys.argv)>2 else 128, 2, 2, 344
hd=D//H
class RMS(torch.nn.Module):
    def __init__(s,d): super().__init__(); s.w=torch.nn.Parameter(torch.ones(d))
    def forward(s,x): return x*torch.rsqrt(x.pow(2).mean(-1,keepdim=True)+1e-6)*s.w
def rope(x):
    T=x.shape[-2]; inv=1.0/(10000**(torch.arange(0,hd,2).float()/hd)); f=torch.outer(torch.arange(T).float(),inv)
    c,s=f.cos(),f.sin(); x1,x2=x[...,:hd//2],x[...,hd//2:]
    return torch.cat([x1*c-x2*s, x2*c+x1*s],-1)
class Block(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.n1=RMS(D); s.n2=RMS(D)
        s.qkv=torch.nn.Linear(D,3*D,bias=False); s.o=torch.nn.Linear(D,D,bias=False)
        s.smear=torch.nn.Parameter(torch.full((H,1,1),-3.0)) if SMEAR else None
        s.g=torch.nn.Linear(D,FF,bias=False); s.u=torch.nn.Linear(D,FF,bias=False); s.d=torch.nn.Linear(FF,D,bias=False)
    def forward(s,x):
        B,T,_=x.shape; q,k,v=s.qkv(s.n1(x)).view(B,T,3,H,hd).permute(2,0,3,1,4)
        q,k=rope(q),rope(k)
        if SMEAR:  # smeared keys (Olsson et al. 2022): each key mixed with the key one position back
            a=torch.sigmoid(s.smear); kp=torch.nn.functional.pad(k,(0,0,1,0))[:,:,:-1]; k=a*k+(1-a)*kp
        w=(q@k.transpose(-1,-2))/math.sqrt(hd)
        w=w.masked_fill(torch.ones(T,T,dtype=torch.bool).triu(1),float('-inf')).softmax(-1); a=w@v
        x=x+s.o(a.transpose(1,2).reshape(B,T,D)); h=s.n2(x)
        return x+s.d(torch.nn.functional.silu(s.g(h))*s.u(h))
class M(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.e=torch.nn.Embedding(V,D); torch.nn.init.normal_(s.e.weight,std=0.02)
        s.b=torch.nn.ModuleList([Block() for _ in range(L)]); s.n=RMS(D)
        s.prev=torch.nn.Linear(D,D,bias=False) if PREV else None
        if PREV: torch.nn.init.zeros_(s.prev.weight)
    def forward(s,x):
        h=s.e(x)
        if PREV: h=h+s.prev(torch.nn.functional.pad(h,(0,0,1,0))[:,:-1])
        for b in s.b: h=b(h)
        return s.n(h)@s.e.weight.T
m=M(); steps=int(sys.argv[3]) if len(sys.argv)>3 else 1500; lr=float(sys.argv[4]) if len(sys.argv)>4 else 3e-3
opt=torch.optim.AdamW(m.parameters(),lr=lr,betas=(0.9,0.95),weight_decay=0.0)
sched=torch.optim.lr_scheduler.LambdaLR(opt,lambda s: min(1,(s+1)/50)*0.5*(1+math.cos(math.pi*min(s,steps)/steps)))
t0=time.time()
for s in range(steps):
    X,Y,Mk=batch(8,512)
    lo=m(X); nll=torch.nn.functional.cross_entropy(lo.reshape(-1,V),Y.reshape(-1),reduction='none')
    loss=(nll*Mk.reshape(-1)).sum()/Mk.sum() if LOSSMASK else nll.mean()
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(),1.0); opt.step(); sched.step()
    if s%100==0 or s==steps-1:
        acc=((lo.argmax(-1)==Y).float()*Mk).sum()/Mk.sum()
        print(s, round(loss.item(),3), "copy acc", round(acc.item(),3), round(time.time()-t0), flush=True)
    if s%200==0 or s==steps-1:
        rp=REPEAT
        globals()['REPEAT']=0.0; X,Y,Mk=batch(8,512); globals()['REPEAT']=rp
        with torch.no_grad(): lo=m(X)
        print("   task-doc copy acc", round((((lo.argmax(-1)==Y).float()*Mk).sum()/Mk.sum()).item(),3), flush=True)
