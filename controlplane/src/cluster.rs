//! Cluster mode: node subnets leased from etcd in flannel's key layout, watched and pushed to
//! vxswitchd.
