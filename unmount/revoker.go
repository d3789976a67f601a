package unmount

// defaultRevoker is the ptrace revoker once unmount/revoke is in the tree;
// until then nil, and the close policy reports every holder as not
// revocable ("revoking by ptrace is not available in this build").
func defaultRevoker() Revoker { return nil }
