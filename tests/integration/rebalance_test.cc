// placeholder (issue 5 work in progress)
