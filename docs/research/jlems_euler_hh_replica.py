import math, sys
C=1e-11
def expl(rate,mid,scale,v):
    x=(v-mid)/scale
    return rate*(x/(1-math.exp(0-x))) if x!=0 else rate
def expr(rate,mid,scale,v): return rate*math.exp((v-mid)/scale)
def sigr(rate,mid,scale,v): return rate/(1+math.exp(0-((v-mid)/scale)))
gates={'m':(lambda v:expl(1000.,-0.04,0.01,v), lambda v:expr(4000.,-0.065,-0.018,v),3.),
       'h':(lambda v:expr(70.,-0.065,-0.02,v), lambda v:sigr(1000.,-0.035,0.01,v),1.),
       'n':(lambda v:expl(100.,-0.055,0.01,v), lambda v:expr(125.,-0.065,-0.08,v),4.)}
def run(lag, pulse_shift=0, dt=1e-5, T=0.15):
    v=-0.065
    q={}
    for g,(fa,fb,_) in gates.items():
        a,b=fa(v),fb(v); q[g]=a/(a+b)
    hist=[v]  # v_0..v_k
    nstep=int(round(T/dt)); t=0.0; out=[(0.0,v)]
    for k in range(1,nstep+1):
        t+=dt
        tt = t  # jLEMS: t passed = end of step
        vr = hist[max(len(hist)-1-lag,0)]   # voltage seen by rates
        fc={}
        newq={}
        for g,(fa,fb,inst) in gates.items():
            a,b=fa(vr),fb(vr)
            inf=a/(a+b); tau=1/((a+b)*1.0)
            fc[g]=math.pow(q[g],inst)
            newq[g]=q[g]+dt*((inf-q[g])/tau)
        tp = tt if pulse_shift==0 else tt-dt
        ip = 8e-11 if (tp>=0.05 and tp<0.05+0.05) else 0.0
        il = 3e-9*(-0.0543-v)
        ina = (1e-11*(1.0*(fc['m']*fc['h'])))*120000.*(0.05-v)
        ik = (1e-11*(1.0*fc['n']))*36000.*(-0.077-v)
        imemb=((0.0+il)+ina)+ik + ip
        v = v + dt*(imemb/C)
        q=newq
        hist.append(v); out.append((t,v))
    sp=[]
    for (t0,v0),(t1,v1) in zip(out,out[1:]):
        if v0<0<=v1: sp.append(round(t1*1000,3))
    return sp
for lag in (0,1,2,3):
    for ps in (0,1):
        print('lag',lag,'pulse_shift',ps, run(lag,ps)[:4])
