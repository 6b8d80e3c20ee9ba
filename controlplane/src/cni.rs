//! The CNI plugin (`vxswitch-cni`, plugin type `vxswitch`): the CNI 1.0 commands, their
//! configuration, results and errors.
