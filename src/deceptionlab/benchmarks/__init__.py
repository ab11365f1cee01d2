"""The eval sets, one folder per benchmark: building items apart from scoring them."""
