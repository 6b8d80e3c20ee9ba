# Tables of results/2026-12-08-issue13-poll/README.md: python3 summarize.py DIR[+DIR...] VARIANT,VARIANT...
import json,sys,glob,os,statistics as st,re
root=sys.argv[1]
keys=[('tcp1_gbps','TCP 1 stream Gb/s'),('tcp4_gbps','TCP 4 streams Gb/s'),('ping_p50_ms','ping median ms'),('ping_p99_ms','ping p99 ms'),('tcp_rr_p50_ms','tcp_rr median ms'),('tcp_rr_p99_ms','tcp_rr p99 ms'),('tcp1_cpu_s_per_gbit','switch CPU-s/Gb tcp1'),('tcp4_cpu_s_per_gbit','switch CPU-s/Gb tcp4')]
var={}
for d in sorted(sum((glob.glob(x+'/*-r*.summary.json') for x in root.split('+')),[])):
    name=re.sub(r'-r\d+\.summary\.json$','',os.path.basename(d))
    var.setdefault(name,[]).append(json.load(open(d)))
order=sys.argv[2].split(',') if len(sys.argv)>2 else sorted(var)
print('| figure | '+' | '.join(f'{v} (n={len(var.get(v,[]))})' for v in order)+' |')
print('|---|'+'---:|'*len(order))
for k,label in keys:
    row=[]
    for v in order:
        rs=var.get(v,[])
        vx=[r['vxswitch'].get(k) for r in rs if r['vxswitch'].get(k) is not None]
        ke=[r['kernel'].get(k) for r in rs if r['kernel'].get(k) is not None]
        rat=[r['vxswitch'][k]/r['kernel'][k] for r in rs if r['vxswitch'].get(k) is not None and r['kernel'].get(k)]
        if not vx: row.append('-'); continue
        s=f'{st.median(vx):.3g}'
        if rat: s+=f' / k {st.median(ke):.3g} = **{st.median(rat):.2f}x** ({min(rat):.2f}–{max(rat):.2f})'
        row.append(s)
    print(f'| {label} | '+' | '.join(row)+' |')
