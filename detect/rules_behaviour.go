package detect

func behaviourRules() []Rule { return nil }
