package detect

func peopleRules() []Rule { return nil }
