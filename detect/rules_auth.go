package detect

func authRules() []Rule { return nil }
