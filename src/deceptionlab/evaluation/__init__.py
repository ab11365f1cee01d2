"""Reading stances (log-likelihood or the LLM judge) and the run over every benchmark."""
