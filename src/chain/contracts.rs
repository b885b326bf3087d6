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

pub use eip3009::{IERC3009, IERC3009Bytes, MockUSDT0, MockWallet1271, TransferWithAuthorization};

/// Gasless payments' bindings (their calls take nine arguments: too many for clippy's taste,
/// but the standard's).
#[allow(clippy::too_many_arguments)]
mod eip3009 {
    alloy::sol!(
        #[sol(rpc)]
        MockWallet1271,
        concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/MockWallet1271.sol/MockWallet1271.json")
    );

    alloy::sol!(
        #[sol(rpc)]
        MockUSDT0,
        concat!(env!("CARGO_MANIFEST_DIR"), "/contracts/out/MockUSDT0.sol/MockUSDT0.json")
    );

    alloy::sol! {
        /// EIP-3009 as USDT0 and USDC have it: a transfer the payer signed, submitted by anyone.
        #[sol(rpc)]
        interface IERC3009 {
            function name() external view returns (string);
            function version() external view returns (string);
            function DOMAIN_SEPARATOR() external view returns (bytes32);
            function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
            function balanceOf(address owner) external view returns (uint256);
            function transferWithAuthorization(
                address from,
                address to,
                uint256 value,
                uint256 validAfter,
                uint256 validBefore,
                bytes32 nonce,
                uint8 v,
                bytes32 r,
                bytes32 s
            ) external;
        }

        /// The signature as bytes: a contract wallet's, checked by the token with EIP-1271.
        #[sol(rpc)]
        interface IERC3009Bytes {
            function transferWithAuthorization(
                address from,
                address to,
                uint256 value,
                uint256 validAfter,
                uint256 validBefore,
                bytes32 nonce,
                bytes signature
            ) external;
        }

        /// The typed data the payer signs (EIP-712, under the token's domain).
        #[derive(Debug)]
        struct TransferWithAuthorization {
            address from;
            address to;
            uint256 value;
            uint256 validAfter;
            uint256 validBefore;
            bytes32 nonce;
        }
    }
}
