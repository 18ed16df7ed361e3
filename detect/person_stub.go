package detect

import "context"

// PersonFromFHIR is replaced by person.go (ingestion branch).
func PersonFromFHIR(ctx context.Context, tok Tokenizer, obj map[string]any) (Person, error) {
	return Person{}, nil
}
