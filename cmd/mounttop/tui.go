package main

// runTUI is the interactive view; being built in ui/ (issue 4).
func runTUI(args []string) error {
	return usagef("the interactive view is not built yet; try: mounttop list")
}

// runDemo is `mounttop demo`; being built with ui/ (issue 4).
func runDemo(args []string) error { return usagef("demo: not built yet") }
