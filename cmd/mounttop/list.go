package main

func runList(args []string) error    { return usagef("list: not built yet") }
func runHolders(args []string) error { return usagef("holders: not built yet") }
