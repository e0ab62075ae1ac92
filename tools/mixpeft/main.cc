// placeholder: replaced by the CLI dispatcher
int main() { return 0; }
