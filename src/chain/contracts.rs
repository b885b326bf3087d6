//! alloy bindings for the project's contracts, generated from the committed artifacts in
//! `contracts/out/` (rebuilt by `make contracts`), so building paywatch needs no Solidity compiler.

alloy::sol!(
    #[sol(rpc)]
    DepositFactory,
    concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/DepositFactory.sol/DepositFactory.json")
);

alloy::sol!(
    #[sol(rpc)]
    MockERC20,
    concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/MockERC20.sol/MockERC20.json")
);

alloy::sol!(
    #[sol(rpc)]
    MockUSDT,
    concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/MockUSDT.sol/MockUSDT.json")
);

alloy::sol!(
    #[sol(rpc)]
    MockPriceFeed,
    concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/MockPriceFeed.sol/MockPriceFeed.json")
);

alloy::sol! {
    /// The part of ERC20 the watcher and the sweeper read, valid for any token.
    #[sol(rpc)]
    interface IERC20 {
        event Transfer(address indexed from, address indexed to, uint256 value);
        function balanceOf(address owner) external view returns (uint256);
        function decimals() external view returns (uint8);
        function transfer(address to, uint256 value) external;
    }
}

alloy::sol!(
    #[sol(rpc)]
    DepositForwarder,
    concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/DepositForwarder.sol/DepositForwarder.json")
);
