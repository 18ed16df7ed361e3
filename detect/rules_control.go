package detect

func controlRules() []Rule { return nil }
