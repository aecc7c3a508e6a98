#!/usr/bin/env python3
"""What dropping a mapped file's pages costs: touches every page of FILE resident, then after
madvise(MADV_DONTNEED) (what --release-vision-weights does to the vision tower after each pass),
and prints the extra time.  usage: bench/refault.py FILE   (Linux, Python >= 3.8)"""
import mmap, os, sys, time
path=sys.argv[1]; f=open(path,'rb'); n=os.fstat(f.fileno()).st_size
m=mmap.mmap(f.fileno(), n, prot=mmap.PROT_READ)
def touch():
    t=time.perf_counter(); s=0
    for o in range(0,n,4096): s+=m[o]
    return time.perf_counter()-t
touch(); base=min(touch() for _ in range(3))  # resident: the loop's own cost
res=[]
for _ in range(5):
    m.madvise(mmap.MADV_DONTNEED); res.append(touch())
print("file %.0f MB: touch resident %.3f s, after MADV_DONTNEED %.3f s (min of 5), extra %.3f s"%(n/1e6, base, min(res), min(res)-base))
