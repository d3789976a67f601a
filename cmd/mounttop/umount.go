package main

// runUmount is `mounttop umount`; being built in unmount/ (issue 3).
func runUmount(args []string) error { return usagef("umount: not built yet") }
