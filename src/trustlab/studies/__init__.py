"""Studies: experiments that combine trustlab's modules into one question."""
